"""The credit ledger: the one home of what the auth service and the gateway share about credits.

Two services run it: the auth service (its /v1/authorize RPC and admin API) and, in
``AUTH_MODE=redis``, the gateway itself, which then makes the same single EVALSHA without the HTTP
hop to auth. Both run the identical script, so accounting stays exact either way.

- ``layout``: every Redis key of the ledger (key records, plans and the keys' copies of them,
  rate-limit state, charges, tombstones, usage), the only place their names are spelled; all of
  one API key's on its Redis Cluster slot (hash tag ``{key id}``).
- ``apikeys``: the API key format, its hash, the charge ids and the bounds of what an authorize
  may carry.
- ``authorize.lua`` / ``refund.lua``: the atomic steps; GCRA lives only in authorize.lua.
- ``decision``: the answer of an authorize (``Decision``), its reasons and their client messages,
  and its wire form (the auth RPC's JSON).
- ``ledger``: ``Ledger`` runs the two scripts; ``alerts``: the events an answer raises.
- ``refill``: a plan's credit refill and its UTC periods (the script applies it lazily, once per
  period, in the authorize step; the Python twin answers "when is the next one").
- ``settings``: the ledger's settings, one block both services' settings classes include.
- ``plancopy``: how a key's copy of its plan is written (on the key's slot, ordered by the plan's
  version); ``keyindex``: the walk of a set of key ids with their hashes; ``migration``: the move
  of data of the untagged layout (at auth's start-up, and on demand for a key not moved yet).
- ``outbox``: the key's usage outbox, the copy of each usage event the scripts keep on its slot
  until the exporter has read it (so an XADD that never happens loses no event), and its member.

Round trips: ``authorize`` is ONE EVALSHA (key record, plan copy, refill, rate-limit state,
debit, charge record, usage and the usage outbox), its usage event's XADD sent after the
answer; an unknown key adds its client's counter (and, until the ledger has seen the layout
done, the probe for a record of the old layout). ``refund`` is one EVALSHA and its event's XADD.

Charges are idempotent and reconcilable (issue 11): the caller chooses the charge id before it
asks, so an authorize whose answer it never learnt (a timeout, a dropped connection, a 5xx) can
still be refunded by that id. The refund leaves a tombstone (as long-lived as a charge record) that
the authorize script honours: a refund of a charge that never happened is a no-op and stays one,
even if that authorize is applied later; an authorize applied twice with one id debits once. What a
tombstone cannot cover: an authorize applied more than ``charge_ttl`` after its refund (the
tombstone has expired) - seconds are the real-world bound.
"""

from __future__ import annotations

from tollgate_common.ledger.decision import Decision
from tollgate_common.ledger.ledger import Ledger
from tollgate_common.ledger.settings import LedgerSettings

__all__ = ["Decision", "Ledger", "LedgerSettings"]
