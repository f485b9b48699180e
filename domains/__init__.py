"""Domains: one task of the paper each (data, model family, metric). See `domains.protocol`.

The registry is an explicit dict: adding a domain means adding a line here.
"""

from __future__ import annotations

from domains.image import ImageDomain
from domains.lm import LanguageModelDomain
from domains.nmt import TranslationDomain
from domains.protocol import DataError, Domain, Scale, TrainSettings, TrialResult, TrialSpec
from domains.speech import SpeechDomain
from domains.speech_attn import SpeechAttentionDomain
from domains.toy import ToyDomain

REGISTRY: dict[str, Domain] = {
    "lm": LanguageModelDomain(),
    "image": ImageDomain(),
    "nmt": TranslationDomain(),
    "speech": SpeechDomain(),
    "speech_attn": SpeechAttentionDomain(),
    "toy": ToyDomain(),
}


def get(name: str) -> Domain:
    """The domain called ``name``; an unknown name is a ValueError listing the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown domain {name!r}; known domains: {', '.join(sorted(REGISTRY))}") from None


def default_unit(domain: Domain) -> str:
    return domain.units[0]


__all__ = ["REGISTRY", "get", "default_unit", "Domain", "DataError", "Scale", "TrainSettings", "TrialResult", "TrialSpec"]
