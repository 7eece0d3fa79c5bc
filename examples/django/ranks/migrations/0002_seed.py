"""Three players and a few games, so that the demo has a ranking to show."""
from django.db import migrations

SEED = {"ada": [120, 80], "grace": [150], "linus": [60, 40, 30]}


def seed(apps, schema_editor):
    Player = apps.get_model("ranks", "Player")
    Game = apps.get_model("ranks", "Game")
    for name, scores in SEED.items():
        player = Player.objects.create(name=name)
        for score in scores:
            Game.objects.create(player=player, score=score)


class Migration(migrations.Migration):
    dependencies = [("ranks", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
