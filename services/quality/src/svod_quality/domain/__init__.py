"""Pure domain of the data-quality service: standardise, validate, score, report.

No gRPC and no SQL here; the servicer translates protobuf to these dataclasses and back.
"""

from svod_quality.domain.facts import (
    ObservedIdentifier,
    ProfileSnapshot,
    collect_facts,
    identifier_hash,
    normalized_contact,
)
from svod_quality.domain.model import (
    IDENTIFIER_TYPES,
    Address,
    Finding,
    FindingAction,
    Identifier,
    RawRecord,
    Result,
)
from svod_quality.domain.monitoring import BatchTally, finding_field, tally
from svod_quality.domain.render import render_html, render_markdown, svg_trend_chart
from svod_quality.domain.report import (
    COMPLETENESS_FIELDS,
    QualityPoint,
    QualityReport,
    ReportBuilder,
    SourceStats,
    build_report,
    worst_sources,
)
from svod_quality.domain.rules import (
    RuleAction,
    RuleDefinitionError,
    RuleSet,
    RuleViolation,
    ValidationRule,
    default_rules,
    parse_rule,
)
from svod_quality.domain.scoring import (
    DEFAULT_WEIGHTS,
    ProfileFacts,
    ProfileScore,
    ScoreWeights,
    score_profile,
)
from svod_quality.domain.standardize import standardize_and_validate, standardize_record

__all__ = [
    "COMPLETENESS_FIELDS",
    "DEFAULT_WEIGHTS",
    "IDENTIFIER_TYPES",
    "Address",
    "BatchTally",
    "Finding",
    "FindingAction",
    "Identifier",
    "ObservedIdentifier",
    "ProfileFacts",
    "ProfileScore",
    "ProfileSnapshot",
    "QualityPoint",
    "QualityReport",
    "RawRecord",
    "ReportBuilder",
    "Result",
    "RuleAction",
    "RuleDefinitionError",
    "RuleSet",
    "RuleViolation",
    "ScoreWeights",
    "SourceStats",
    "ValidationRule",
    "build_report",
    "collect_facts",
    "default_rules",
    "finding_field",
    "identifier_hash",
    "normalized_contact",
    "parse_rule",
    "render_html",
    "render_markdown",
    "score_profile",
    "standardize_and_validate",
    "standardize_record",
    "svg_trend_chart",
    "tally",
    "worst_sources",
]
