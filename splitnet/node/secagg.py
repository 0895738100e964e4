"""Secure aggregation on one client (``SECURE_AGGREGATION=on``): keys, seeds, masked states.

Each incarnation of a client makes a fresh X25519 key and announces its public half in its join
facts (``secagg_key``), both ways, so after the joins every client knows every other's key (over
mutual TLS the announcement is authenticated). The seed a pair shares is derived from the two
keys and the plan's fingerprint (:func:`~splitnet.learning.secagg.pair_seed`); a restarted or
re-planned client has a new key, so no mask is ever used twice for different values.

When the aggregator pulls round r's states it names every owner's sample count; the client
answers with :func:`~splitnet.learning.secagg.masked_sum` of its replicas and the dtype of each
tensor, never with a replica itself. The aggregator adds every client's payload
(:func:`~splitnet.learning.secagg.unmask_sum`): it learns each partition's weighted sum over its
owners, and nothing about one owner's replica.

Note: a lost client. The aggregator averages only once every client's payload is in; masks shared
with a client that never answered do not cancel, so a partial sum is noise, never a wrong
average. The round is then repeated without that client (``FAILURE_POLICY=drop``: the survivors
restart from the last checkpoint with a derived plan and new keys) or the run stops (``abort``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from splitnet.errors import ProtocolError
from splitnet.learning.keys import StateKey
from splitnet.learning.secagg import masked_sum, pair_seed, unmask_sum
from splitnet.plan.plan import Plan

__all__ = ["KEY_FACT", "SecureAggregation", "average_masked"]

KEY_FACT = "secagg_key"
_HEX_KEY = re.compile(r"[0-9a-f]{64}")
_MAX_WEIGHT = 2 ** 31


class SecureAggregation:
    """Client ``me``'s key, its peers' public keys, and its masked states."""

    def __init__(self, plan: Plan, me: int) -> None:
        self.me = me
        self._plan = plan
        self._key = X25519PrivateKey.generate()
        self._peers: dict[int, bytes] = {}
        self.holders = plan.holders()

    @property
    def public(self) -> str:
        """Return this client's public key, hex."""
        return self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()

    def announce(self, facts: Mapping[str, Any]) -> dict[str, Any]:
        """Return the join facts with this client's public key."""
        return {**facts, KEY_FACT: self.public}

    def learn(self, peer: int, facts: Mapping[str, Any]) -> None:
        """Take ``peer``'s public key from its join facts (ProtocolError if absent or bad)."""
        key = facts.get(KEY_FACT)
        if not isinstance(key, str) or not _HEX_KEY.fullmatch(key):
            raise ProtocolError(f"client {peer} announced no secure-aggregation key "
                                f"({KEY_FACT}: 64 hex digits) though SECURE_AGGREGATION=on")
        self._peers[peer] = bytes.fromhex(key)

    def _seeds(self) -> dict[int, bytes]:
        salt = self._plan.fingerprint
        return {peer: pair_seed(self._key, key, min(self.me, peer), max(self.me, peer), salt)
                for peer, key in self._peers.items() if peer in self._plan.clients}

    def payload(self, states: Mapping[str, torch.Tensor], weights: Mapping[int, int],
                round_: int) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """Return the masked weighted sums of ``states`` and each tensor's dtype.

        ProtocolError, with nothing sent, when ``weights`` (from the aggregator) miss an owner
        of these replicas or hold anything but positive whole numbers.
        """
        keys = {text: StateKey.parse(text) for text in states}
        bad = [o for o in sorted({key.owner or 0 for key in keys.values()})
               if type(weights.get(o)) is not int or not 0 < weights[o] <= _MAX_WEIGHT]
        if bad:
            raise ProtocolError(f"client {self.me} refused a secure-aggregation pull: no valid "
                                f"sample count for owner(s) {bad} (whole numbers "
                                f"1..{_MAX_WEIGHT})")
        try:
            masked = masked_sum(states, weights, self._seeds(), self.holders, self.me, round_)
        except ValueError as exc:
            raise ProtocolError(f"client {self.me}: secure aggregation: {exc}") from None
        dtypes = {f"{keys[text].partition}/{keys[text].name}": str(t.dtype)
                  for text, t in states.items()}
        return masked, dtypes


def average_masked(payloads: list[Mapping[str, torch.Tensor]], metas: list[Mapping[str, Any]],
                   weights: Mapping[int, int]) -> dict[str, torch.Tensor]:
    """Return the weighted average the clients' masked payloads add up to (the aggregator)."""
    dtypes: dict[str, torch.dtype] = {}
    for meta in metas:
        for name, text in dict(meta.get("dtypes", {})).items():
            dtype = getattr(torch, str(text).removeprefix("torch."), None)
            if not isinstance(dtype, torch.dtype):
                raise ProtocolError(f"secure aggregation: unknown dtype {text!r} for {name}")
            dtypes[name] = dtype
    missing = sorted({name for p in payloads for name in p} - dtypes.keys())
    if missing:
        raise ProtocolError(f"secure aggregation: no dtype for {missing[:3]}")
    return unmask_sum(payloads, float(sum(weights.values())), dtypes)
