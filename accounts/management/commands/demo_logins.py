import unicodedata

from django.core.management.base import BaseCommand

from geo.demo import DEMO_PASSWORD, demo_logins
from portal.demo import DEMO_RESIDENT_EMAIL, DEMO_RESIDENT_USERNAME

HEADINGS = ("username", "password", "role", "department", "scope")
TWO_FACTOR_MARK = " *"
TWO_FACTOR_NOTE = (
    "* An administrator: sets up two-factor sign-in with an authenticator app (TOTP) "
    "at the first sign-in."
)


def _width(text: str) -> int:
    # Chinese characters take two columns in a terminal.
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


class Command(BaseCommand):
    help = (
        "Print where CivicGrid is served and the demo accounts that still sign in with the "
        "demo password: username, password, role and scope of each."
    )

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000")

    def handle(self, *args, url: str, **options):
        logins = demo_logins()
        self.stdout.write(f"CivicGrid: {url}")
        if not logins:
            self.stdout.write("No demo account signs in with the demo password.")
            return
        rows = []
        for login in logins:
            mark = TWO_FACTOR_MARK if login.two_factor_setup else ""
            held_roles = login.roles or [None]
            for i, held in enumerate(held_roles):
                first = i == 0
                rows.append(
                    (
                        login.username + mark if first else "",
                        login.password if first else "",
                        f"{held.name} {held.name_en}" if held else "-",
                        held.department if held and held.department else "-",
                        "、".join(held.areas) if held else "-",
                    )
                )
        widths = [max(_width(row[c]) for row in [HEADINGS, *rows]) for c in range(len(HEADINGS))]
        self.stdout.write(f"Demo accounts (password {DEMO_PASSWORD}):")
        for row in [HEADINGS, tuple("-" * w for w in widths), *rows]:
            cells = [_pad(cell, w) for cell, w in zip(row, widths, strict=True)]
            self.stdout.write("  " + "  ".join(cells).rstrip())
        if any(login.two_factor_setup for login in logins):
            self.stdout.write(TWO_FACTOR_NOTE)
        self.stdout.write(f"Residents' portal: {url}/portal/")
        if any(login.username == DEMO_RESIDENT_USERNAME for login in logins):
            self.stdout.write(
                f"  the demo resident signs in at {url}/portal/me/login/ with "
                f"{DEMO_RESIDENT_EMAIL} and the demo password"
            )
