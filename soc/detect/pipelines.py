"""Field mapping: pySigma processing pipelines turn rule fields (Sigma's taxonomy: `Image`,
`CommandLine`, `cs-uri-query`) into the ECS fields events carry, exactly as
pysigma-backend-elasticsearch does when it converts a rule to a query, so that the stream and a
hunt in Elasticsearch agree.

Pipelines are named (installed ones such as `ecs_windows`) or YAML files (ours under
`rules/pipelines/`). Every pipeline item carries its own log-source conditions, so the combined
pipeline is applied to every rule and each item touches only the rules it is meant for.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path

from sigma.exceptions import SigmaError
from sigma.plugins import InstalledSigmaPlugins
from sigma.processing.pipeline import ProcessingPipeline
from sigma.processing.resolver import ProcessingPipelineResolver


class PipelineError(ValueError):
    """A configured pipeline cannot be found or read; the message names it."""


@cache
def _resolver() -> ProcessingPipelineResolver:
    return InstalledSigmaPlugins.autodiscover().get_pipeline_resolver()


def resolve_pipeline(specs: Sequence[str]) -> ProcessingPipeline:
    """One pipeline from names and YAML paths, in priority order (as pySigma's resolver
    orders them; the order given among equal priorities): a pipeline that renames rule fields
    before ecs_windows (priority 20) prefixes them must run first wherever it is named."""
    pipelines: list[ProcessingPipeline] = []
    seen: set[str] = set()
    for spec in specs:
        path = Path(spec)
        # The same file named twice (the shipped pipelines and a rules/ directory given too)
        # is applied once.
        key = str(path.resolve()) if path.suffix in {".yml", ".yaml"} else spec
        if key in seen:
            continue
        seen.add(key)
        try:
            if path.suffix in {".yml", ".yaml"}:
                if not path.is_file():
                    raise PipelineError(f"pipeline file {spec} does not exist")
                pipelines.append(ProcessingPipeline.from_yaml(path.read_text("utf-8")))
            else:
                pipelines.append(_resolver().resolve_pipeline(spec))
        except (SigmaError, ValueError, KeyError) as exc:
            if isinstance(exc, PipelineError):
                raise
            raise PipelineError(f"pipeline {spec}: {exc}") from None
    pipeline = ProcessingPipeline()
    for each in sorted(pipelines, key=lambda found: found.priority):
        pipeline += each
    return pipeline
