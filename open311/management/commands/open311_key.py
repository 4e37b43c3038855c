"""``manage.py open311_key``: create, list and revoke Open311 client keys."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from accounts.middleware import request_context
from core.errors import DomainError
from geo.models import Area
from open311.models import ApiKey
from open311.services import DEFAULT_REQUESTS_PER_MINUTE, api_key_create, api_key_revoke


class Command(BaseCommand):
    help = (
        "Manage Open311 client API keys. 'create' prints the new key once: CivicGrid "
        "keeps only its hash."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create a key and print it once")
        create.add_argument("--name", required=True, help="the client application")
        create.add_argument(
            "--jurisdiction", required=True, help="code of the area the key may post into"
        )
        create.add_argument(
            "--requests-per-minute",
            type=int,
            default=DEFAULT_REQUESTS_PER_MINUTE,
            help=f"default {DEFAULT_REQUESTS_PER_MINUTE}",
        )
        create.add_argument("--contact", default="", help="whom to call about this client")
        sub.add_parser("list", help="list the keys (prefix, client, jurisdiction, state)")
        revoke = sub.add_parser("revoke", help="revoke a key")
        revoke.add_argument("prefix", help="the key's first 12 characters, as listed")

    def handle(self, *args, action, **options):
        with request_context():
            if action == "create":
                self.create(**options)
            elif action == "list":
                self.list()
            else:
                self.revoke(options["prefix"])

    def create(self, *, name, jurisdiction, requests_per_minute, contact, **_options):
        area = Area.objects.filter(code=jurisdiction.strip()).first()
        if area is None:
            raise CommandError(f"no area has the code {jurisdiction!r}")
        try:
            key, secret = api_key_create(
                actor=None,
                name=name,
                jurisdiction=area,
                requests_per_minute=requests_per_minute,
                contact=contact,
            )
        except DomainError as error:
            problems = "; ".join(f"{f}: {' '.join(m)}" for f, m in error.errors.items())
            raise CommandError(problems) from error
        self.stderr.write(
            f"Created key {key.prefix}… for {key.name} in {area.code} {area.name}. "
            "It is printed once, below; CivicGrid keeps only its hash."
        )
        self.stdout.write(secret)

    def list(self):
        for key in ApiKey.objects.select_related("jurisdiction").order_by("name", "pk"):
            state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
            self.stdout.write(
                f"{key.prefix}\t{key.name}\t{key.jurisdiction.code}\t"
                f"{key.requests_per_minute}/min\t{state}"
            )

    def revoke(self, prefix):
        key = ApiKey.objects.filter(prefix=prefix.strip()).first()
        if key is None:
            raise CommandError(f"no key starts with {prefix!r}")
        api_key_revoke(key=key, actor=None)
        self.stdout.write(f"Revoked {key.prefix}… ({key.name}).")
