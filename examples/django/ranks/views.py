"""The leaderboard API: plain DRF views answering JSON.

None of them says anything about caching (no Cache-Control, no ETag), as
is usual for a DRF API, so a shared cache must not store their answers
until a route of cacheproxy gives them a ttl (examples/django/routes.yaml).
What they do say is what lets cacheproxy keep its copies current:

- GET /rank tags its answer "rank" (Cache-Tag), so anything that changes
  the ranking can purge it: cacheproxy purge -tag rank.
- Each ranking row links to its player with request.build_absolute_uri(),
  as DRF's hyperlinked fields and pagination links do. Behind cacheproxy
  these links must name the public host, not Django's own address:
  cacheproxy runs with -public-host (sent as X-Forwarded-Host) and
  settings.py sets USE_X_FORWARDED_HOST.
- POST /games answers 201 with Location: /games/<id>, the new game, and
  Content-Location: /rank, since its body is the new ranking. cacheproxy
  invalidates both URLs fleet-wide after a successful POST through it.
"""
from django.db.models import Count, Sum
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from .models import Game, Player


def ranking(request):
    players = Player.objects.annotate(
        total=Coalesce(Sum("games__score"), 0), played=Count("games")
    ).order_by("-total", "name")
    return [
        {
            "rank": i + 1,
            "player": p.id,
            "name": p.name,
            "score": p.total,
            "games": p.played,
            "url": request.build_absolute_uri(f"/players/{p.id}"),
        }
        for i, p in enumerate(players)
    ]


class RankView(APIView):
    # Before cacheproxy, Django cached this view itself:
    #
    #     from django.utils.decorators import method_decorator
    #     from django.views.decorators.cache import cache_page
    #
    #     @method_decorator(cache_page(30), name="dispatch")
    #     class RankView(APIView): ...
    #
    # Remove the decorator (and its CACHES setting) and give the path a
    # route instead, {path: /rank, ttl: 30s}: one copy for every instance
    # behind the proxy rather than one per Django process, and a purge that
    # works. With cache_page left in place, a purge in cacheproxy refetches
    # the copy Django still holds, stale for up to 30 more seconds.
    def get(self, request):
        return Response(ranking(request), headers={"Cache-Tag": "rank"})


class GameSerializer(serializers.ModelSerializer):
    class Meta:
        model = Game
        fields = ["id", "player", "score", "played_at"]
        read_only_fields = ["id", "played_at"]


class GamesView(APIView):
    def post(self, request):
        s = GameSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        game = s.save()
        return Response(
            ranking(request),
            status=status.HTTP_201_CREATED,
            headers={"Location": f"/games/{game.id}", "Content-Location": "/rank"},
        )


class GameView(APIView):
    def get(self, request, pk):
        return Response(GameSerializer(get_object_or_404(Game, pk=pk)).data)


class PlayerView(APIView):
    def get(self, request, pk):
        p = get_object_or_404(Player, pk=pk)
        games = p.games.order_by("-played_at")
        return Response(
            {
                "player": p.id,
                "name": p.name,
                "score": sum(g.score for g in games),
                "games": [{"id": g.id, "score": g.score} for g in games],
            },
            headers={"Cache-Tag": f"player:{p.id}"},
        )
