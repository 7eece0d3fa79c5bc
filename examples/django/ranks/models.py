from django.db import models


class Player(models.Model):
    name = models.CharField(max_length=100, unique=True)

    def __str__(self):
        return self.name


class Game(models.Model):
    player = models.ForeignKey(Player, related_name="games", on_delete=models.CASCADE)
    score = models.PositiveIntegerField()
    played_at = models.DateTimeField(auto_now_add=True)
