from django.urls import path

from ranks import views

urlpatterns = [
    path("rank", views.RankView.as_view()),
    path("games", views.GamesView.as_view()),
    path("games/<int:pk>", views.GameView.as_view()),
    path("players/<int:pk>", views.PlayerView.as_view()),
]
