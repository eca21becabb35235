"""Thin gRPC adapter of the quality service: protobuf in, use case, protobuf out."""

from __future__ import annotations

import grpc

from svod.quality.v1 import quality_pb2, quality_pb2_grpc
from svod_quality.domain import render_html, render_markdown
from svod_quality.entrypoints.batch import BatchRunner
from svod_quality.entrypoints.convert import (
    id_type_name,
    report_to_proto,
    rule_definition,
    rule_to_proto,
)
from svod_quality.service_layer.use_cases import (
    IdentifierRef,
    PairReport,
    QualityService,
)
from svod_runtime.auth import acting_as
from svod_runtime.protoconv import date_to_proto, datetime_to_timestamp, timestamp_to_datetime


def _refs(idents: object) -> list[IdentifierRef]:
    return [IdentifierRef(id_type_name(i.type), i.value, i.namespace) for i in idents]  # type: ignore[attr-defined]


def _pairs(pairs: object) -> list[PairReport]:
    return [
        PairReport(p.first_customer_id, p.second_customer_id, p.score)
        for p in pairs  # type: ignore[attr-defined]
    ]


class QualityServicer(quality_pb2_grpc.QualityServiceServicer):
    def __init__(self, service: QualityService, runner: BatchRunner) -> None:
        self.service = service
        self.runner = runner

    async def StandardizeBatch(
        self, request: quality_pb2.StandardizeBatchRequest, context: grpc.aio.ServicerContext
    ) -> quality_pb2.StandardizeBatchResponse:
        return await self.service.standardize(
            request.source,
            len(request.records),
            lambda rules, today: self.runner.run(request, rules, today),
        )

    async def CreateValidationRule(
        self, request: quality_pb2.CreateValidationRuleRequest, context: grpc.aio.ServicerContext
    ) -> quality_pb2.ValidationRule:
        stored = await self.service.create_rule(rule_definition(request.rule), acting_as(""))
        return rule_to_proto(stored)

    async def ListValidationRules(
        self, request: quality_pb2.ListValidationRulesRequest, context: grpc.aio.ServicerContext
    ) -> quality_pb2.ListValidationRulesResponse:
        rules = await self.service.list_rules(request.source)
        return quality_pb2.ListValidationRulesResponse(rules=[rule_to_proto(r) for r in rules])

    async def DeleteValidationRule(
        self, request: quality_pb2.DeleteValidationRuleRequest, context: grpc.aio.ServicerContext
    ) -> quality_pb2.DeleteValidationRuleResponse:
        await self.service.delete_rule(request.rule_id, acting_as(""))
        return quality_pb2.DeleteValidationRuleResponse()

    async def ReportDuplicates(
        self, request: quality_pb2.ReportDuplicatesRequest, context: grpc.aio.ServicerContext
    ) -> quality_pb2.ReportDuplicatesResponse:
        await self.service.report_duplicates(
            _pairs(request.pairs),
            _pairs(request.resolved_pairs),
            _refs(request.blocked_identifiers),
            _refs(request.unblocked_identifiers),
            timestamp_to_datetime(request.report_time),
        )
        return quality_pb2.ReportDuplicatesResponse()

    async def ReportContactFailures(
        self, request: quality_pb2.ReportContactFailuresRequest, context: grpc.aio.ServicerContext
    ) -> quality_pb2.ReportContactFailuresResponse:
        await self.service.report_contact_failures(
            [
                (
                    IdentifierRef(
                        id_type_name(f.identifier.type), f.identifier.value, f.identifier.namespace
                    ),
                    timestamp_to_datetime(f.failure_time),
                )
                for f in request.failures
            ]
        )
        return quality_pb2.ReportContactFailuresResponse()

    async def EraseCustomer(
        self, request: quality_pb2.EraseCustomerRequest, context: grpc.aio.ServicerContext
    ) -> quality_pb2.EraseCustomerResponse:
        count = await self.service.erase_customer(
            request.customer_id,
            [
                IdentifierRef(id_type_name(i.type), i.value, i.namespace)
                for i in request.identifiers
            ],
        )
        return quality_pb2.EraseCustomerResponse(erased_count=count)

    async def GetViolationStats(
        self, request: quality_pb2.GetViolationStatsRequest, context: grpc.aio.ServicerContext
    ) -> quality_pb2.GetViolationStatsResponse:
        violations, records = await self.service.violation_stats(request.days, request.source)
        return quality_pb2.GetViolationStatsResponse(
            violations=[
                quality_pb2.ViolationCount(
                    day=date_to_proto(v.day),
                    source=v.source,
                    rule=v.rule,
                    field=v.field,
                    action=v.action,
                    count=v.findings,
                )
                for v in violations
            ],
            records=[
                quality_pb2.SourceDayCount(
                    day=date_to_proto(r.day),
                    source=r.source,
                    records=r.records,
                    rejected_records=r.rejected,
                    flagged_records=r.flagged,
                )
                for r in records
            ],
        )

    async def GetProfileScore(
        self, request: quality_pb2.GetProfileScoreRequest, context: grpc.aio.ServicerContext
    ) -> quality_pb2.ProfileScore:
        customer_id, score, at = await self.service.profile_score(request.customer_id)
        return quality_pb2.ProfileScore(
            customer_id=customer_id,
            score=score.score,
            reasons=score.reasons,
            score_time=datetime_to_timestamp(at),
        )

    async def RefreshQualityReport(
        self, request: quality_pb2.RefreshQualityReportRequest, context: grpc.aio.ServicerContext
    ) -> quality_pb2.QualityReport:
        return report_to_proto(await self.service.refresh_report(request.trend_days))

    async def GetQualityReport(
        self, request: quality_pb2.GetQualityReportRequest, context: grpc.aio.ServicerContext
    ) -> quality_pb2.QualityReport:
        report = await self.service.report(request.trend_days, request.refresh)
        answer = report_to_proto(report)
        if request.format == quality_pb2.REPORT_FORMAT_MARKDOWN:
            answer.rendered = render_markdown(report)
        elif request.format == quality_pb2.REPORT_FORMAT_HTML:
            answer.rendered = render_html(report)
        return answer
