"""Signals other apps listen to without the sender knowing them.

``minute_sweep`` is sent after the case loop's minute sweep (cases.tasks),
so an app above the cases (the portal, say) can do its own periodic work —
such as erasing personal data past its retention period — on the same
schedule without the cases app importing it.
"""

from django.dispatch import Signal

minute_sweep = Signal()
