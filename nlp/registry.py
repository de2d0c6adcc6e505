"""The grid registry: a district's streets, communities and grids, loaded from editable files.

A district lives in one directory (the shipped default is ``data/districts/xiaoshan``)::

    units.csv      id,name,level,parent,aliases,bare_name[,kind]
                   one district row, its streets/towns (parent = the district) and its
                   villages/communities (parent = a street)
    grids.csv      id,name,community,aliases[,polygon]      (or grids.geojson, see below)
    elsewhere.csv  name,level,belongs_to   places outside the district (optional)
    routing.csv    the department routing table (:mod:`wangge.models.departments`)

``aliases`` are ``|``-separated other names a message may use: residential compounds (小区,
苑, 花园), roads and landmarks of a grid, the official 村委会 form of a village. ``bare_name``
is the name without its suffix (城厢 for 城厢街道), given only where it is safe to match on its
own; leave it empty for names that are everyday words (幸福村 → not 幸福).

Grids can instead come as GeoJSON: a FeatureCollection whose features have the properties
``id``, ``name``, ``community`` and optionally ``aliases`` (a list or a ``|``-joined string),
and a Polygon or MultiPolygon geometry in WGS84 longitude/latitude. A grid CSV may carry the
same geometry as GeoJSON text in a ``polygon`` column.

Every problem in these files (duplicate ids, unknown parents, units no grid or street hangs
from, bad polygons) is reported with the file, the row and the column, by
:func:`validate_district` all at once, or by :meth:`Registry.load` as an error on the first.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import shapely
from shapely.geometry import MultiPolygon, Point, Polygon, shape
from shapely.geometry.base import BaseGeometry

from wangge.errors import DataError

Level = Literal["district", "street", "community", "grid"]
LEVELS: tuple[Level, ...] = ("district", "street", "community", "grid")
PARENT_LEVEL: dict[str, str | None] = {
    "district": None,
    "street": "district",
    "community": "street",
    "grid": "community",
}
UNIT_COLUMNS = ("id", "name", "level", "parent")
GRID_COLUMNS = ("id", "name", "community")
ELSEWHERE_COLUMNS = ("name", "level", "belongs_to")


def default_district_dir() -> Path:
    """The shipped 萧山区 registry."""
    return Path(str(resources.files("wangge.data") / "districts" / "xiaoshan"))


@dataclass(frozen=True)
class Unit:
    """A street, community or grid (or the district itself)."""

    id: str
    name: str
    level: Level
    parent: str | None
    aliases: tuple[str, ...] = ()
    bare_name: str | None = None
    polygon: BaseGeometry | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ElsewherePlace:
    """A place outside the district (another district's street or community, a city …)."""

    name: str
    level: str
    belongs_to: str


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a registry file, located as a person fixing it needs."""

    path: str
    row: int | None
    column: str | None
    message: str

    def as_error(self) -> DataError:
        return DataError(self.message, path=self.path, row=self.row, column=self.column)

    def __str__(self) -> str:
        return str(self.as_error())


@dataclass
class _Row:
    """A unit as read, with where it came from, before the registry is checked."""

    unit: Unit
    path: str
    row: int
    polygon_error: str | None = None


def split_names(value: Any) -> tuple[str, ...]:
    """The names of a ``|``-separated cell (or a JSON list), stripped, duplicates dropped."""
    if value is None:
        return ()
    items = value if isinstance(value, list) else str(value).split("|")
    return tuple(dict.fromkeys(str(item).strip() for item in items if str(item).strip()))


def read_csv_rows(path: Path, required: Iterable[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a UTF-8 CSV numbered as a spreadsheet shows them (header = row 1)."""
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as error:
        raise DataError(f"cannot open: {error.strerror}", path=path) from None
    with handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or []]
        missing = [name for name in required if name not in header]
        if missing:
            raise DataError(
                f"missing column(s) {', '.join(missing)}; the header has {', '.join(header)}",
                path=path,
                row=1,
            )
        reader.fieldnames = header
        try:
            for record in reader:
                values = {k: (v or "").strip() for k, v in record.items() if k is not None}
                if any(values.values()):
                    yield reader.line_num, values
        except (csv.Error, UnicodeDecodeError) as error:
            raise DataError(f"unreadable: {error}", path=path, row=reader.line_num) from None


def _polygon(geometry: Any) -> tuple[BaseGeometry | None, str | None]:
    """A grid's polygon from GeoJSON geometry (a dict or JSON text), or why it is unusable."""
    if geometry in (None, ""):
        return None, None
    try:
        if isinstance(geometry, str):
            geometry = json.loads(geometry)
        polygon = shape(geometry)
    except (ValueError, TypeError, AttributeError, KeyError, IndexError) as error:
        return None, f"not a GeoJSON geometry: {error}"
    if not isinstance(polygon, Polygon | MultiPolygon):
        return None, f"must be a Polygon or MultiPolygon, not {polygon.geom_type}"
    if polygon.is_empty:
        return None, "the polygon is empty"
    if not polygon.is_valid:
        return None, f"invalid polygon: {shapely.is_valid_reason(polygon)}"
    minx, miny, maxx, maxy = polygon.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        return None, "coordinates are not longitude/latitude (WGS84)"
    return polygon, None


def _read_units(path: Path) -> list[_Row]:
    rows = []
    for number, values in read_csv_rows(path, UNIT_COLUMNS):
        unit = Unit(
            id=values["id"],
            name=values["name"],
            level=values["level"],  # type: ignore[arg-type]  # checked by _check
            parent=values["parent"] or None,
            aliases=split_names(values.get("aliases")),
            bare_name=values.get("bare_name") or None,
        )
        rows.append(_Row(unit, str(path), number))
    return rows


def _grid(values: dict[str, Any], geometry: Any, path: Path, number: int) -> _Row:
    polygon, error = _polygon(geometry)
    unit = Unit(
        id=str(values.get("id") or "").strip(),
        name=str(values.get("name") or "").strip(),
        level="grid",
        parent=str(values.get("community") or "").strip() or None,
        aliases=split_names(values.get("aliases")),
        polygon=polygon,
    )
    return _Row(unit, str(path), number, polygon_error=error)


def read_grid_file(path: str | Path) -> list[_Row]:
    """Grids from a CSV or a GeoJSON FeatureCollection (rows numbered from 1 per feature)."""
    path = Path(path)
    if path.suffix.lower() in (".geojson", ".json"):
        try:
            collection = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise DataError(f"not readable as GeoJSON: {error}", path=path) from None
        features = collection.get("features") if isinstance(collection, dict) else None
        if not isinstance(features, list):
            raise DataError("a GeoJSON FeatureCollection with 'features' is expected", path=path)
        rows = []
        for number, feature in enumerate(features, start=1):
            properties = feature.get("properties") if isinstance(feature, dict) else None
            if not isinstance(properties, dict):
                raise DataError("feature without properties", path=path, row=number)
            rows.append(_grid(properties, feature.get("geometry"), path, number))
        return rows
    return [
        _grid(values, values.get("polygon"), path, number)
        for number, values in read_csv_rows(path, GRID_COLUMNS)
    ]


def _check(rows: list[_Row]) -> list[Problem]:
    """Duplicate ids, bad levels, unknown or wrong-level parents, orphans, bad polygons."""
    problems: list[Problem] = []
    by_id = _check_rows(rows, problems)
    districts = [row for row in by_id.values() if row.unit.level == "district"]
    if len(districts) != 1:
        where = rows[0].path if rows else "units.csv"
        message = f"exactly one district row needed, found {len(districts)}"
        problems.append(Problem(where, None, "level", message))
    for row in by_id.values():
        problem = _parent_problem(row, by_id)
        if problem is not None:
            problems.append(Problem(row.path, row.row, *problem))
    has_child = {row.unit.parent for row in by_id.values()}
    for row in by_id.values():
        if row.unit.level in ("street", "community") and row.unit.id not in has_child:
            child = "community" if row.unit.level == "street" else "grid"
            message = f"orphan {row.unit.level} {row.unit.id} {row.unit.name}: no {child} under it"
            problems.append(Problem(row.path, row.row, "id", message))
    return problems


def _check_rows(rows: list[_Row], problems: list[Problem]) -> dict[str, _Row]:
    """Each row on its own (id, name, level, polygon) and duplicate ids; the rows by id."""
    by_id: dict[str, _Row] = {}
    for row in rows:
        unit = row.unit

        def problem(column: str, message: str, row: _Row = row) -> None:
            problems.append(Problem(row.path, row.row, column, message))

        if not unit.id:
            problem("id", "the id is empty")
            continue
        if not unit.name:
            problem("name", f"unit {unit.id} has no name")
        if unit.level not in LEVELS:
            problem("level", f"unknown level {unit.level!r}; use one of {', '.join(LEVELS)}")
        if row.polygon_error:
            problem("polygon", row.polygon_error)
        if unit.id in by_id:
            first = by_id[unit.id]
            problem("id", f"duplicate id {unit.id}: already used in {first.path} row {first.row}")
            continue
        by_id[unit.id] = row
    return by_id


def _parent_problem(row: _Row, by_id: dict[str, _Row]) -> tuple[str, str] | None:
    """(column, message) when the row's parent is missing, unknown or of the wrong level."""
    unit = row.unit
    expected = PARENT_LEVEL.get(unit.level)
    if expected is None:
        return None
    column = "community" if unit.level == "grid" else "parent"
    if unit.parent is None:
        return column, f"{unit.level} {unit.id} has no parent"
    if unit.parent not in by_id:
        return column, f"{unit.level} {unit.id}: unknown parent {unit.parent}"
    parent_level = by_id[unit.parent].unit.level
    if parent_level != expected:
        return column, (
            f"{unit.level} {unit.id}: parent {unit.parent} is a {parent_level}, not a {expected}"
        )
    return None


def _grid_path(directory: Path) -> Path | None:
    for name in ("grids.csv", "grids.geojson"):
        if (directory / name).exists():
            return directory / name
    return None


def _read_district(directory: Path, grid_file: str | Path | None) -> list[_Row]:
    if not (directory / "units.csv").exists():
        raise DataError("no units.csv: not a district directory", path=directory)
    rows = _read_units(directory / "units.csv")
    grid_path = Path(grid_file) if grid_file is not None else _grid_path(directory)
    if grid_path is None:
        raise DataError("no grids.csv or grids.geojson and no grid file given", path=directory)
    return rows + read_grid_file(grid_path)


def validate_district(directory: str | Path, grid_file: str | Path | None = None) -> list[Problem]:
    """Every problem of a district directory (and of a grid file replacing its grids)."""
    try:
        return _check(_read_district(Path(directory), grid_file))
    except DataError as error:
        return [Problem(error.path or str(directory), error.row, error.column, error.message)]


def _read_elsewhere(path: Path) -> list[ElsewherePlace]:
    if not path.exists():
        return []
    return [
        ElsewherePlace(values["name"], values["level"], values["belongs_to"])
        for _number, values in read_csv_rows(path, ELSEWHERE_COLUMNS)
        if values["name"]
    ]


class Registry:
    """A district's units, looked up by id, with their parents and children.

    Built with :meth:`load`; the constructor takes already-checked units.
    """

    def __init__(
        self, units: Iterable[Unit], elsewhere: Iterable[ElsewherePlace] = (), *, source: str = ""
    ) -> None:
        self.units: dict[str, Unit] = {unit.id: unit for unit in units}
        self.elsewhere = list(elsewhere)
        self.source = source
        self.district = next(u for u in self.units.values() if u.level == "district")
        self._children: dict[str, list[Unit]] = defaultdict(list)
        for unit in self.units.values():
            if unit.parent is not None:
                self._children[unit.parent].append(unit)
        polygons = [u for u in self.units.values() if u.level == "grid" and u.polygon is not None]
        self._polygon_grids = polygons
        self._polygon_index = shapely.STRtree([u.polygon for u in polygons]) if polygons else None

    @classmethod
    def load(
        cls, directory: str | Path | None = None, *, grid_file: str | Path | None = None
    ) -> Registry:
        """Read and check a district directory; the first problem found is raised."""
        directory = Path(directory) if directory is not None else default_district_dir()
        rows = _read_district(directory, grid_file)
        problems = _check(rows)
        if problems:
            more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
            first = problems[0]
            raise DataError(
                first.message + more, path=first.path, row=first.row, column=first.column
            )
        return cls(
            (row.unit for row in rows),
            _read_elsewhere(directory / "elsewhere.csv"),
            source=str(directory),
        )

    def of_level(self, level: Level) -> list[Unit]:
        return [unit for unit in self.units.values() if unit.level == level]

    def children(self, unit_id: str) -> list[Unit]:
        return list(self._children.get(unit_id, ()))

    def ancestor(self, unit_id: str, level: Level) -> Unit | None:
        """The unit itself or its parent, grandparent … at ``level``."""
        unit = self.units.get(unit_id)
        while unit is not None and unit.level != level:
            unit = self.units.get(unit.parent) if unit.parent is not None else None
        return unit

    def grid_at(self, longitude: float, latitude: float) -> Unit | None:
        """The grid whose polygon contains the point, if grids have polygons."""
        if self._polygon_index is None:
            return None
        hits = self._polygon_index.query(Point(longitude, latitude), predicate="intersects")
        return self._polygon_grids[int(hits[0])] if len(hits) else None
