"""Domains: one task of the paper each (data, model family, metric). See `domains.protocol`.

The registry is an explicit table: adding a domain means adding a line to ``_PLACES`` here.
"""

from __future__ import annotations

import importlib
from typing import Iterator, Mapping

from domains.protocol import DataError, Domain, Scale, TrainSettings, TrialResult, TrialSpec

# name -> (module, class): the one table of domains.
_PLACES: dict[str, tuple[str, str]] = {
    "lm": ("domains.lm", "LanguageModelDomain"),
    "image": ("domains.image", "ImageDomain"),
    "nmt": ("domains.nmt", "TranslationDomain"),
    "speech": ("domains.speech", "SpeechDomain"),
    "speech_attn": ("domains.speech_attn", "SpeechAttentionDomain"),
    "toy": ("domains.toy", "ToyDomain"),
}


class _Registry(Mapping[str, Domain]):
    """The domains by name, each module imported when its domain is first asked for: a study of
    lm need not import torchvision (2 s of every command and every Ray worker's start)."""

    def __init__(self, places: Mapping[str, tuple[str, str]]):
        self._places = dict(places)
        self._made: dict[str, Domain] = {}

    def __getitem__(self, name: str) -> Domain:
        if name not in self._made:
            module, cls = self._places[name]    # KeyError for an unknown name, as a dict's
            self._made[name] = getattr(importlib.import_module(module), cls)()
        return self._made[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._places)

    def __len__(self) -> int:
        return len(self._places)


REGISTRY: Mapping[str, Domain] = _Registry(_PLACES)


def get(name: str) -> Domain:
    """The domain called ``name``; an unknown name is a ValueError listing the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown domain {name!r}; known domains: {', '.join(sorted(REGISTRY))}") from None


def default_unit(domain: Domain) -> str:
    return domain.units[0]


__all__ = ["REGISTRY", "get", "default_unit", "Domain", "DataError", "Scale", "TrainSettings", "TrialResult", "TrialSpec"]
