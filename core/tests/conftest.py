# pytest finds fixtures by name in a conftest, so importing them is what shares them.
from accounts.testing import admin, english, fresh_cache  # noqa: F401
