"""Probabilistic identity matching for Russian customer data (pure domain code).

Knows that Маша, Masha and Мария are one name and Иванова is Иванов's wife, not his typo;
scores record pairs with Fellegi–Sunter weights estimated by EM from the service's own
candidate pairs; and refuses to auto-link households and namesakes.

The service's loop:

1. ``blocking_keys(record)`` → store the keys; find candidates sharing any of them.
2. ``score_candidates(record, candidates, model)`` → ranked candidates, each with a decision
   ("link" / "review" / "new") and per-feature weights (``.explain()`` for the API).
3. Periodically: ``compare_records`` over stored candidate pairs → ``estimate_model`` →
   ``MatchModel.to_json()`` to store; ``MatchModel.from_json`` to load.
"""

from svod_identity.domain.matching.blocking import MAX_BLOCK_SIZE, MAX_KEYS, blocking_keys
from svod_identity.domain.matching.compare import Comparison, compare_records
from svod_identity.domain.matching.contacts import (
    is_landline,
    is_placeholder_phone,
    normalize_card,
    normalize_email,
    normalize_phone,
)
from svod_identity.domain.matching.em import estimate_model
from svod_identity.domain.matching.model import (
    FEATURES,
    LEVELS,
    MISSING,
    MatchModel,
    default_model,
)
from svod_identity.domain.matching.names import (
    canonical_first_name,
    gender_of_first_name,
    is_known_first_name,
    normalize_gender,
)
from svod_identity.domain.matching.places import address_key, city_key
from svod_identity.domain.matching.record import (
    PersonRecord,
    build_person_record,
    looks_swapped,
)
from svod_identity.domain.matching.scoring import (
    CandidateScore,
    Decision,
    PairScore,
    safety_vetoes,
    score_candidates,
    score_comparison,
    score_pair,
)
from svod_identity.domain.matching.surnames import (
    patronymic_form,
    surname_form,
    surname_key,
)
from svod_identity.domain.matching.text import fold, latin_skeleton, to_cyrillic

__all__ = [
    "FEATURES",
    "LEVELS",
    "MAX_BLOCK_SIZE",
    "MAX_KEYS",
    "MISSING",
    "CandidateScore",
    "Comparison",
    "Decision",
    "MatchModel",
    "PairScore",
    "PersonRecord",
    "address_key",
    "blocking_keys",
    "build_person_record",
    "canonical_first_name",
    "city_key",
    "compare_records",
    "default_model",
    "estimate_model",
    "fold",
    "gender_of_first_name",
    "is_known_first_name",
    "is_landline",
    "is_placeholder_phone",
    "latin_skeleton",
    "looks_swapped",
    "normalize_card",
    "normalize_email",
    "normalize_gender",
    "normalize_phone",
    "patronymic_form",
    "safety_vetoes",
    "score_candidates",
    "score_comparison",
    "score_pair",
    "surname_form",
    "surname_key",
    "to_cyrillic",
]
