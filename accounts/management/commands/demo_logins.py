from django.core.management.base import BaseCommand

from accounts.models import User
from accounts.two_factor import confirmed_device, two_factor_required
from geo.demo import demo_logins


class Command(BaseCommand):
    help = "Print where CivicGrid is served and the demo accounts that can sign in."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000")

    def handle(self, *args, url: str, **options):
        logins = demo_logins()
        self.stdout.write(f"CivicGrid: {url}")
        if not logins:
            self.stdout.write("No demo account with the demo password exists.")
            return
        width = max(len(name) for name, _password in logins)
        self.stdout.write("Demo sign-in (username / password):")
        for name, password in logins:
            user = User.objects.get(username=name)
            note = ""
            if two_factor_required(user) and confirmed_device(user) is None:
                note = "  (an administrator: sets up two-factor sign-in with an authenticator app first)"
            self.stdout.write(f"  {name.ljust(width)}  {password}{note}")
