"""The triage pipeline: a message, normalised once, through every model in one order.

:class:`Triage` is the only place where the parts are put together: the batch commands
(``wangge classify``, ``route``, ``dedup``, ``evaluate``), ``POST /v1/classify`` and
``POST /v1/messages`` all call it. :class:`Message` is what goes in, :class:`TriageResult`
what comes out, :class:`ReviewReason` why a person should check a result.
"""

from wangge.pipeline.reasons import ReviewReason
from wangge.pipeline.records import Message, TriageResult
from wangge.pipeline.triage import Triage

__all__ = ["Message", "ReviewReason", "Triage", "TriageResult"]
