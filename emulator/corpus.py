"""What the emulator serves: classification cases with their images.

Two sources: ``demo_corpus`` generates a deterministic, realistic-looking corpus (75 HSK
codes in sibling families, a long tail of rare codes, label noise, part-number names, drawn
product images, and optionally older rulings under codes a later edition renumbered, split
or moved, with that older edition and its correlation rows); ``kcs_corpus`` loads the real
2024 cases of the kcs_hs_chatbot snapshot (no images). ``demo_request_goods`` makes the demo's
backlog: goods of the corpus' codes, bare part numbers and goods of codes it does not have.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from emulator.images import draw_product
from hscode.series import SERIES, Series

log = logging.getLogger(__name__)

RRDC_PREFIX = "007"  # real RRDC_NOs look like 0072026002409: '007' + year + 6-digit number


@dataclass(frozen=True)
class EmulatorCase:
    rrdc_no: str
    series: str
    reference_no: str
    decision_date: dt.date
    office: str
    hs_code: str  # raw portal spelling; may hold several codes or free text
    title: str
    description: str
    reason: str
    images: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.rrdc_no) != 13 or not self.rrdc_no.isdigit():
            raise ValueError(f"rrdc_no must be 13 digits, got {self.rrdc_no!r}")
        if self.series not in SERIES:
            raise ValueError(f"series must be one of {SERIES}, got {self.series!r}")

    @property
    def atch_file_id(self) -> str:
        """The attachment-group id used in image URLs."""
        return f"ULS{self.rrdc_no}"


class Corpus:
    """An ordered, read-only collection of cases with lookups by key, series and image id."""

    def __init__(self, cases: Sequence[EmulatorCase], name: str = "corpus") -> None:
        self.name = name
        self.cases: tuple[EmulatorCase, ...] = tuple(cases)
        self._by_rrdc: dict[str, EmulatorCase] = {}
        for case in self.cases:
            if case.rrdc_no in self._by_rrdc:
                raise ValueError(f"duplicate rrdc_no {case.rrdc_no} in {name}")
            self._by_rrdc[case.rrdc_no] = case
        self._by_atch = {c.atch_file_id: c for c in self.cases}

    def __len__(self) -> int:
        return len(self.cases)

    def __iter__(self) -> Iterator[EmulatorCase]:
        return iter(self.cases)

    def filter(self, keep: Callable[[EmulatorCase], bool], name: str | None = None) -> Corpus:
        """A sub-corpus, e.g. the cases published by some date (for incremental-crawl tests)."""
        return Corpus([c for c in self.cases if keep(c)], name=name or f"{self.name}:filtered")

    def get(self, rrdc_no: str) -> EmulatorCase | None:
        return self._by_rrdc.get(rrdc_no)

    def by_series(self, series: str) -> list[EmulatorCase]:
        if series not in SERIES:
            raise ValueError(f"series must be one of {SERIES}, got {series!r}")
        return [c for c in self.cases if c.series == series]

    def image(self, atch_file_id: str, file_sn: int) -> bytes | None:
        """Image ``file_sn`` (1-based) of an attachment group, or None."""
        case = self._by_atch.get(atch_file_id)
        if case is None or not 1 <= file_sn <= len(case.images):
            return None
        return case.images[file_sn - 1]

    @property
    def n_images(self) -> int:
        return sum(len(c.images) for c in self.cases)

    def fingerprint(self) -> str:
        """sha256 over every field and image byte: equal fingerprints mean identical corpora."""
        h = hashlib.sha256()
        for c in self.cases:
            record = [
                c.rrdc_no,
                c.series,
                c.reference_no,
                c.decision_date.isoformat(),
                c.office,
                c.hs_code,
                c.title,
                c.description,
                c.reason,
            ]
            h.update(json.dumps(record, ensure_ascii=False).encode())
            for img in c.images:
                h.update(hashlib.sha256(img).digest())
        return h.hexdigest()


def _assign_rrdc(rows: list[dict], start: int = 1) -> None:
    """Give each row a unique 13-digit RRDC_NO: '007' + decision year + running number per year."""
    counters: dict[int, int] = {}
    for row in rows:
        year = row["decision_date"].year
        counters[year] = counters.get(year, start - 1) + 1
        if counters[year] > 999_999:
            raise ValueError(f"more than 999,999 cases in {year}: RRDC_NO would overflow")
        row["rrdc_no"] = f"{RRDC_PREFIX}{year:04d}{counters[year]:06d}"


# ---------------------------------------------------------------------------- real data

KCS_FILES = {
    Series.ORDINARY: "HS분류사례.json",
    Series.COUNCIL: "HS협의회.json",
    Series.COMMITTEE: "HS위원회.json",
}
_KCS_FIELDS = (
    "reference_id",
    "decision_date",
    "organization",
    "hs_code",
    "product_name",
    "description",
    "decision_reason",
)


def kcs_corpus(path: Path) -> Corpus:
    """The real 2024 cases of the kcs_hs_chatbot snapshot (folder holding the three JSON files).

    A record missing a field or with an unreadable date is skipped with a warning
    naming the file, index and reason; the rest load.
    """
    path = Path(path)
    if not (path / KCS_FILES["ordinary"]).exists() and (path / "kcs_hs_chatbot").is_dir():
        path = path / "kcs_hs_chatbot"  # also accept the shared data root
    rows: list[dict] = []
    for series, filename in KCS_FILES.items():
        file = path / filename
        if not file.is_file():
            raise FileNotFoundError(f"kcs corpus file missing: {file}")
        records = json.loads(file.read_text(encoding="utf-8"))
        if not isinstance(records, list):
            raise TypeError(f"{file}: expected a JSON list of cases, got {type(records).__name__}")
        for i, rec in enumerate(records):
            missing = [f for f in _KCS_FIELDS if not isinstance(rec, dict) or rec.get(f) is None]
            if missing:
                log.warning("kcs corpus: skipping %s[%d]: missing %s", filename, i, missing)
                continue
            try:
                date = dt.date.fromisoformat(str(rec["decision_date"]).strip())
            except ValueError as exc:
                log.warning("kcs corpus: skipping %s[%d]: bad decision_date: %s", filename, i, exc)
                continue
            rows.append(
                {
                    "series": series,
                    "reference_no": str(rec["reference_id"]).strip(),
                    "decision_date": date,
                    "office": str(rec["organization"]).strip(),
                    "hs_code": str(rec["hs_code"]),
                    "title": str(rec["product_name"]),
                    "description": str(rec["description"]),
                    "reason": str(rec["decision_reason"]),
                }
            )
    _assign_rrdc(rows)
    return Corpus([EmulatorCase(**row) for row in rows], name=f"kcs:{path}")


# ---------------------------------------------------------------------------- demo data
#
# The demo corpus imitates the portal's mix, not its texts (nothing is copied from real
# rulings): families of sibling subheadings that share their vocabulary (fresh / frozen meat,
# cotton / synthetic garments, whole machines / their parts), the state or material that
# tells siblings apart said in the description more often than in the title, names that are
# only a part or model number, Korean and English names mixed, a few rulings decided under a
# sibling's code (label noise), a long tail of codes with one or two rulings, and, when
# ``older_years`` is given, older rulings under codes a later edition renumbered, split or
# moved (with the older edition and the six-digit correlation rows that say so).


@dataclass(frozen=True)
class _Family:
    """What sibling codes share: brands, uses, the specification line, extra sentences."""

    key: str
    image_kind: str
    brands: tuple[str, ...]
    uses: tuple[str, ...]
    spec: str  # format string: {a} {b} single digits, {c} one of c_values
    c_values: tuple[object, ...]
    extra: tuple[str, ...]  # optional sentences that lengthen descriptions


@dataclass(frozen=True)
class _Product:
    hs: str  # portal spelling
    family: _Family
    heading_text: str  # the code's name in the tariff (the reason quotes it)
    name_en: str  # the code's English name in the tariff
    names_ko: tuple[str, ...]
    names_en: tuple[str, ...]
    materials: tuple[str, ...]  # the state / material line: what tells siblings apart
    weight: float = 1.0  # how often the portal rules on it, relative to its family's others
    part_style: str | None = None  # a part: named by a part number of this style
    image: str | None = None  # picture kind, when not the family's
    brands: tuple[str, ...] = ()  # when not the family's
    spec: str | None = None  # when not the family's (then c_values too)
    c_values: tuple[object, ...] = ()

    @property
    def image_kind(self) -> str:
        return self.image or self.family.image_kind

    @property
    def hs10(self) -> str:
        return self.hs.replace(".", "").replace("-", "")


def _fam(key, image, brands, uses, spec, c_values, extra) -> _Family:
    return _Family(key, image, tuple(brands), tuple(uses), spec, tuple(c_values), tuple(extra))


_MEAT = _fam(
    "meat",
    "beef",
    ("IBP", "JBS", "TEYS", "MINERVA", "CARGILL", "TYSON", "DANISH CROWN", "SEARA", "HORMEL"),
    ("식육 가공 및 판매용", "음식점 조리용", "정육점 소매 판매용"),
    "포장단위 {a}{b}kg, 원산지 {c}",
    ("미국", "호주", "캐나다", "뉴질랜드", "브라질", "스페인", "덴마크", "칠레"),
    (
        "진공 포장한 것으로 양념 등 다른 물질은 첨가되지 않음",
        "판지 상자에 포장되어 운송됨",
        "도축 후 부위별로 절단한 것임",
        "지방을 일부 제거하여 정형한 것임",
    ),
)
_KNIT = _fam(
    "knit",
    "tshirt",
    ("UNIQLO", "SPAO", "HANES", "GILDAN", "TOPTEN", "ZARA", "H&M", "8SECONDS"),
    ("일상복", "남녀공용 상의", "아동용 상의", "운동용 상의"),
    "중량 1{a}{b}g/㎡, 사이즈 {c}",
    ("S", "M", "L", "XL", "95", "100", "105"),
    (
        "목둘레에 립 조직의 밴드가 봉제되어 있음",
        "소매 끝단과 밑단은 접어박기 처리되어 있음",
        "개별 폴리백에 포장되어 수입됨",
        "앞면에 로고가 프린트되어 있음",
    ),
)
_TROUSERS = _fam(
    "trousers",
    "trousers",
    ("LEVI'S", "UNIQLO", "ZARA", "BANANA REPUBLIC", "GAP", "TOMMY HILFIGER", "MANGO"),
    ("일상복", "정장용 하의", "작업복 하의"),
    "허리 {c}cm, 총장 10{a}cm",
    tuple(range(64, 96, 2)),
    (
        "앞 지퍼와 단추로 여미는 구조이며 양옆에 주머니가 있음",
        "벨트 고리가 부착되어 있음",
        "워싱 가공 처리되어 있음",
    ),
)
_SHOES = _fam(
    "footwear",
    "shoe",
    ("NIKE", "ADIDAS", "ASICS", "NEW BALANCE", "FILA", "CONVERSE", "DR. MARTENS", "CROCS"),
    ("일상 보행용", "달리기 등 운동용", "실내외 겸용"),
    "사이즈 2{a}{b}mm, 중량 약 {c}g",
    tuple(range(250, 460, 10)),
    (
        "끈으로 조여 착용하는 구조이며 깔창은 탈착이 가능함",
        "바깥 바닥에 미끄럼 방지 패턴이 형성되어 있음",
        "뒤꿈치 부분에 충격흡수용 쿠셔닝이 내장되어 있음",
    ),
)
_COMPUTERS = _fam(
    "computers",
    "laptop",
    ("SAMSUNG", "LG", "LENOVO", "DELL", "HP", "ASUS", "ACER", "APPLE"),
    ("사무용 자료처리", "개인용 컴퓨팅", "교육용"),
    "화면 1{a}.{b}인치, 중량 {c}g",
    tuple(range(980, 2400, 10)),
    (
        "중앙처리장치와 주기억장치를 갖추고 있으며 운영체제가 설치되어 있음",
        "무선랜 및 블루투스 통신 모듈이 내장되어 있음",
        "전원 어댑터가 동봉되어 수입됨",
    ),
)
_PHONES = _fam(
    "phones",
    "phone",
    ("SAMSUNG", "APPLE", "XIAOMI", "GOOGLE", "MOTOROLA", "NOKIA", "OPPO"),
    ("이동통신 음성통화 및 데이터 통신", "개인용 통신기기"),
    "화면 {a}.{b}인치, 저장용량 {c}GB",
    (32, 64, 128, 256, 512),
    (
        "셀룰러 통신망에 접속하여 음성 및 영상 통화가 가능함",
        "충전 케이블이 함께 포장되어 있음",
        "카메라 모듈과 배터리를 갖추고 있음",
    ),
)
_CHIPS = _fam(
    "chips",
    "chip",
    ("SAMSUNG", "SK HYNIX", "MICRON", "TEXAS INSTRUMENTS", "STMICROELECTRONICS", "INFINEON"),
    ("전자기기 제조용", "인쇄회로기판 실장용", "산업용 제어기기 제조용"),
    "패키지 {c}, 핀 수 {a}{b}개",
    ("BGA", "QFN", "LQFP", "TSOP", "SOIC", "FBGA"),
    (
        "릴(reel) 단위로 포장되어 수입됨",
        "반도체 웨이퍼에 회로를 집적한 후 패키징한 것임",
        "표면실장형(SMD) 부품임",
    ),
)
_VEHICLE = _fam(
    "vehicle_parts",
    "part",
    ("HYUNDAI MOBIS", "BOSCH", "DENSO", "MANDO", "AISIN", "ZF", "BREMBO", "VALEO"),
    ("승용자동차 정비용", "자동차 조립용", "자동차 애프터마켓 교체용"),
    "중량 {a}.{b}kg, 적용 차종 {c}",
    ("SONATA", "AVANTE", "SORENTO", "K5", "TUCSON", "CARNIVAL"),
    (
        "제8701호부터 제8705호까지의 차량에 전용되는 부분품임",
        "개별 상자에 포장되어 수입됨",
        "순정품 부품번호가 각인되어 있음",
    ),
)
_FLUIDS = _fam(
    "pumps_valves",
    "part",
    ("GRUNDFOS", "WILO", "KSB", "EBARA", "DANFOSS", "EMERSON", "SWAGELOK", "KITZ"),
    ("산업용 설비용", "건물 급수 설비용", "화학 공정 배관용"),
    "구경 {c}A, 최고사용압력 {a}{b}bar",
    (15, 20, 25, 40, 50, 80, 100),
    (
        "플랜지 방식으로 배관에 연결함",
        "명판에 제조사와 형식이 표시되어 있음",
        "시험성적서가 첨부되어 수입됨",
    ),
)
_COSMETICS = _fam(
    "cosmetics",
    "bottle",
    ("ESTEE LAUDER", "ROM&ND", "CLIO", "3CE", "L'OREAL", "SHISEIDO", "KERASTASE", "AVEDA"),
    ("피부 관리용", "화장용", "두발 관리용"),
    "내용량 {c}ml, 제조번호 {a}{b}A",
    (30, 50, 100, 150, 200, 300, 500),
    (
        "화장품법에 따른 전성분이 표시되어 있음",
        "소매용 용기에 충전되어 개별 상자에 포장됨",
        "피부 자극 테스트를 완료한 제품임",
    ),
)
_FOOD = _fam(
    "food",
    "box",
    ("NESTLE", "ORION", "LOTTE", "CJ", "KELLOGG'S", "GNC", "NOW FOODS", "POCARI"),
    ("식용", "간식용", "식품 제조용"),
    "내용량 {c}, 유통기한 제조일로부터 1{a}개월",
    ("100g", "250g", "500g", "60정", "90캡슐", "500ml", "1.5L"),
    (
        "식품 등의 표시기준에 따른 한글 표시사항이 부착되어 있음",
        "밀봉 포장되어 상온에서 유통됨",
        "원재료 배합비율이 제출되었음",
    ),
)
_TOYS = _fam(
    "toys",
    "toy",
    ("HOT WHEELS", "SYMA", "TAMIYA", "MAISTO", "SILVERLIT", "LEGO", "MATTEL", "BANDAI"),
    ("어린이 놀이용", "오락용 완구", "수집용 완구"),
    "크기 {a}{b}cm, 권장연령 만 {c}세 이상",
    (3, 6, 8, 14),
    (
        "만 14세 미만 어린이용으로 표시되어 소매포장됨",
        "충전식 배터리와 USB 충전 케이블이 포함되어 있음",
        "KC 인증 표시가 부착되어 있음",
    ),
)
_PENS = _fam(
    "pens",
    "pen",
    ("MONAMI", "ZEBRA", "PILOT", "BIC", "STAEDTLER", "PENTEL", "FABER-CASTELL", "UNI"),
    ("필기용", "사무용 필기구", "학생용 필기구"),
    "전체 길이 1{b}{a}mm, {c}자루 입",
    (1, 3, 5, 10, 12),
    (
        "12자루를 종이상자에 소매포장한 상태로 수입됨",
        "클립이 부착되어 있음",
        "고무 그립이 부착되어 장시간 필기 시 손의 피로를 줄여줌",
    ),
)
_BAGS = _fam(
    "bags",
    "backpack",
    ("THE NORTH FACE", "SAMSONITE", "JANSPORT", "EASTPAK", "OSPREY", "COACH", "MICHAEL KORS"),
    ("휴대품 운반용", "등산 및 여행용", "통학용", "일상 휴대용"),
    "크기 {c}x300x150mm, 무게 {a}.{b}kg",
    tuple(range(250, 500, 10)),
    (
        "지퍼식 주머니가 여러 개 부착되어 있음",
        "내부에 수납용 칸막이가 있음",
        "브랜드 로고가 부착되어 있음",
    ),
)
_LAMPS = _fam(
    "lamps",
    "lamp",
    ("PHILIPS", "OSRAM", "IKEA", "XIAOMI", "LUMENA", "PANASONIC", "GE"),
    ("실내 조명용", "책상 조명용", "실내 장식 조명용", "옥외 조명용"),
    "소비전력 {a}{b}W, 색온도 {c}00K",
    tuple(range(27, 66)),
    (
        "발광다이오드(LED) 광원에 전용되도록 설계되어 있음",
        "전원 어댑터를 통해 교류 전원에 연결하여 사용함",
        "밝기 조절 기능이 있음",
    ),
)
_FURNITURE = _fam(
    "furniture",
    "chair",
    ("IKEA", "HANSSEM", "SIDIZ", "HERMAN MILLER", "STEELCASE", "ILOOM", "LIVART"),
    ("사무용", "가정용", "업소용"),
    "크기 {c}x{a}{b}0x900mm",
    tuple(range(400, 1800, 50)),
    (
        "분해된 상태로 포장되어 수입되며 조립 설명서가 동봉됨",
        "바퀴가 부착되어 있음",
        "높이 조절이 가능함",
    ),
)
_MISC = _fam(  # the long tail and the goods the corpus does not have
    "misc",
    "box",
    ("NO BRAND", "ACME", "KOREA TRADING", "GLOBAL GOODS", "SUNRISE", "HANA", "DAEHAN", "TOYO"),
    ("일반 소비자 판매용", "산업용", "가정용", "업무용"),
    "규격 {a}{b}0 x {c}mm, 중량 {a}.{b}kg",
    tuple(range(50, 1000, 50)),
    (
        "개별 포장되어 수입되며 제조사 표시가 있음",
        "용도에 따라 다양한 규격으로 생산됨",
        "제품 사양서와 사진이 제출되었음",
    ),
)


def _p(hs, family, heading, name_en, ko, en, materials, **kw) -> _Product:
    return _Product(hs, family, heading, name_en, tuple(ko), tuple(en), tuple(materials), **kw)


# The main codes: each family's siblings share names and description lines.
PRODUCTS: tuple[_Product, ...] = (
    # --- meat: fresh / chilled against frozen, boneless against bone-in, beef / pork / chicken
    _p("0201.30-0000", _MEAT, "쇠고기(신선하거나 냉장한 것으로 한정한다) 중 뼈 없는 것",
       "Meat of bovine animals, fresh or chilled, boneless",
       ("냉장 쇠고기", "냉장 소고기 부채살", "냉장 우육 등심", "쇠고기 정육"),
       ("Chilled boneless beef", "Chilled beef striploin", "Fresh beef chuck eye roll"),
       ("뼈를 제거한 소의 정육으로 냉장 상태(0~4℃)로 유지됨",
        "도축 후 냉동하지 않고 냉장 보관한 뼈 없는 소고기")),
    _p("0202.30-0000", _MEAT, "쇠고기(냉동한 것으로 한정한다) 중 뼈 없는 것",
       "Meat of bovine animals, frozen, boneless",
       ("냉동 쇠고기", "뼈 없는 냉동 우육", "냉동 소고기 부채살", "쇠고기 정육"),
       ("Frozen boneless beef", "Frozen beef chuck", "Frozen beef brisket"),
       ("뼈를 제거한 소의 정육으로 영하 18℃ 이하로 급속 냉동됨", "냉동 상태의 뼈 없는 소고기"),
       weight=1.6),
    _p("0202.20-0000", _MEAT, "쇠고기(냉동한 것으로 한정한다) 중 그 밖의 뼈째 자른 고기",
       "Meat of bovine animals, frozen, other cuts with bone in",
       ("냉동 LA갈비", "냉동 소갈비", "뼈 있는 냉동 쇠고기"),
       ("Frozen beef short ribs bone-in", "Frozen bone-in beef ribs"),
       ("뼈째 절단한 소의 갈비 부위로 영하 18℃ 이하로 냉동됨",
        "뼈가 붙어 있는 상태로 절단하여 냉동한 소고기"), weight=0.7),
    _p("0203.19-0000", _MEAT, "돼지고기(신선하거나 냉장한 것으로 한정한다) 중 그 밖의 것",
       "Meat of swine, fresh or chilled, other",
       ("냉장 돼지고기 삼겹살", "냉장 돈육 목살", "냉장 돼지고기", "돼지고기 정육"),
       ("Chilled pork belly", "Fresh pork collar", "Chilled pork loin"),
       ("돼지의 정육으로 냉장 상태(0~4℃)로 유지됨", "도축 후 냉장 보관한 돼지고기 부위육"),
       weight=0.8),
    _p("0203.29-0000", _MEAT, "돼지고기(냉동한 것으로 한정한다) 중 그 밖의 것",
       "Meat of swine, frozen, other",
       ("냉동 돼지고기 삼겹살", "냉동 돈육 목살", "냉동 돼지고기", "돼지고기 정육"),
       ("Frozen pork belly", "Frozen pork collar", "Frozen pork shoulder"),
       ("돼지의 정육으로 영하 18℃ 이하로 급속 냉동됨", "냉동 상태의 돼지고기 부위육"),
       weight=1.3),
    _p("0207.14-1000", _MEAT, "닭의 절단육과 설육(냉동한 것으로 한정한다) 중 뼈 없는 것",
       "Cuts of fowls of the species Gallus domesticus, frozen, boneless",
       ("냉동 닭가슴살", "냉동 닭다리살 정육", "냉동 닭고기"),
       ("Frozen chicken breast", "Frozen boneless chicken leg"),
       ("뼈를 제거한 닭의 절단육으로 영하 18℃ 이하로 냉동됨",), weight=0.8),
    # --- knitted garments: cotton against man-made fibres
    _p("6109.10-1000", _KNIT,
       "티셔츠ㆍ싱글리트와 그 밖의 조끼(메리야스 편물이나 뜨개질 편물로 한정한다) 중 면으로 만든 것",
       "T-shirts, singlets and other vests, knitted or crocheted, of cotton",
       ("반소매 티셔츠", "라운드넥 티셔츠", "면 티셔츠", "오버핏 티셔츠"),
       ("T-shirt", "Cotton crew neck T-shirt", "Short sleeve tee"),
       ("면 100% 메리야스 편물", "면 95% 폴리우레탄 5% 메리야스 편물", "유기농 면 100% 싱글저지"),
       weight=2.0),
    _p("6109.90-3010", _KNIT,
       "티셔츠ㆍ싱글리트와 그 밖의 조끼(메리야스 편물이나 뜨개질 편물로 한정한다) 중 합성섬유로 만든 것",
       "T-shirts, singlets and other vests, knitted or crocheted, of synthetic fibres",
       ("반소매 티셔츠", "기능성 티셔츠", "쿨 티셔츠", "폴리 티셔츠"),
       ("T-shirt", "Polyester quick dry T-shirt", "Sports tee"),
       ("폴리에스테르 100% 메리야스 편물", "폴리에스테르 88% 폴리우레탄 12% 메리야스 편물",
        "나일론 90% 폴리우레탄 10% 메리야스 편물"), weight=1.4),
    _p("6110.20-1000", _KNIT,
       "저지ㆍ풀오버ㆍ카디건과 이와 유사한 제품(메리야스 편물이나 뜨개질 편물로 한정한다) 중 면으로 만든 것",
       "Jerseys, pullovers, cardigans and similar articles, knitted, of cotton",
       ("면 스웨터", "니트 풀오버", "라운드넥 니트", "맨투맨 티셔츠"),
       ("Cotton sweater", "Knit pullover", "Cotton sweatshirt"),
       ("면 100% 메리야스 편물", "면 80% 폴리에스테르 20% 기모 메리야스 편물")),
    _p("6110.30-1000", _KNIT,
       "저지ㆍ풀오버ㆍ카디건과 이와 유사한 제품(메리야스 편물이나 뜨개질 편물로 한정한다) 중 인조섬유로 만든 것",
       "Jerseys, pullovers, cardigans and similar articles, knitted, of man-made fibres",
       ("아크릴 스웨터", "니트 풀오버", "플리스 집업", "맨투맨 티셔츠"),
       ("Acrylic sweater", "Knit pullover", "Fleece jacket"),
       ("아크릴 100% 메리야스 편물", "폴리에스테르 100% 플리스 편물",
        "아크릴 70% 나일론 30% 메리야스 편물")),
    _p("6105.10-0000", _KNIT, "남성용 셔츠(메리야스 편물이나 뜨개질 편물로 한정한다) 중 면으로 만든 것",
       "Men's or boys' shirts, knitted or crocheted, of cotton",
       ("남성용 피케 셔츠", "면 폴로 셔츠", "카라 티셔츠"), ("Men's polo shirt", "Cotton pique polo"),
       ("면 100% 피케 메리야스 편물",), weight=0.7),
    _p("6105.20-0000", _KNIT,
       "남성용 셔츠(메리야스 편물이나 뜨개질 편물로 한정한다) 중 인조섬유로 만든 것",
       "Men's or boys' shirts, knitted or crocheted, of man-made fibres",
       ("남성용 골프 셔츠", "기능성 폴로 셔츠", "카라 티셔츠"), ("Men's golf polo", "Polyester polo shirt"),
       ("폴리에스테르 100% 메리야스 편물", "폴리에스테르 92% 폴리우레탄 8% 메리야스 편물"),
       weight=0.7),
    # --- woven trousers: men's / women's, cotton / synthetic
    _p("6203.42-1000", _TROUSERS, "남성용 긴 바지(메리야스 편물 제외) 중 면으로 만든 것",
       "Men's or boys' trousers, of cotton", ("남성용 면바지", "남성용 청바지", "치노 팬츠"),
       ("Men's cotton trousers", "Men's denim jeans", "Chino pants"),
       ("면 100% 데님 직물", "면 98% 폴리우레탄 2% 능직물"), weight=1.2),
    _p("6203.43-1000", _TROUSERS, "남성용 긴 바지(메리야스 편물 제외) 중 합성섬유로 만든 것",
       "Men's or boys' trousers, of synthetic fibres",
       ("남성용 슬랙스", "남성용 기능성 바지", "등산 바지"), ("Men's polyester slacks", "Men's hiking pants"),
       ("폴리에스테르 100% 직물", "나일론 88% 폴리우레탄 12% 직물")),
    _p("6204.62-1000", _TROUSERS, "여성용 긴 바지(메리야스 편물 제외) 중 면으로 만든 것",
       "Women's or girls' trousers, of cotton", ("여성용 면바지", "여성용 청바지", "와이드 팬츠"),
       ("Women's denim jeans", "Women's cotton wide pants"),
       ("면 100% 데님 직물", "면 97% 폴리우레탄 3% 능직물")),
    _p("6204.63-1000", _TROUSERS, "여성용 긴 바지(메리야스 편물 제외) 중 합성섬유로 만든 것",
       "Women's or girls' trousers, of synthetic fibres",
       ("여성용 슬랙스", "와이드 팬츠", "여성용 기능성 바지"), ("Women's polyester slacks", "Women's wide pants"),
       ("폴리에스테르 100% 직물", "폴리에스테르 95% 폴리우레탄 5% 직물"), weight=0.8),
    # --- footwear: textile / leather / rubber uppers, and soles as parts
    _p("6404.11-0000", _SHOES,
       "신발류[바깥 바닥을 고무ㆍ플라스틱ㆍ가죽ㆍ콤퍼지션 레더로 만들고, 갑피를 방직용 섬유재료로 만든 것] 중 운동화",
       "Sports footwear, outer soles of rubber or plastics, uppers of textile materials",
       ("러닝화", "운동화", "트레이닝화", "농구화"), ("Running shoes", "Sports footwear", "Training shoes"),
       ("갑피는 폴리에스테르 메시 직물, 바깥 바닥은 고무", "갑피는 니트 직물, 바깥 바닥은 EVA 및 고무",
        "갑피는 나일론 직물, 바깥 바닥은 합성고무"), weight=1.5),
    _p("6404.19-0000", _SHOES, "그 밖의 신발(갑피를 방직용 섬유재료로 만든 것)",
       "Other footwear with uppers of textile materials",
       ("캔버스화", "스니커즈", "슬립온", "운동화"), ("Canvas sneakers", "Slip-on shoes", "Casual sneakers"),
       ("갑피는 면 캔버스 직물, 바깥 바닥은 고무", "갑피는 폴리에스테르 직물, 바깥 바닥은 고무")),
    _p("6403.99-0000", _SHOES, "신발(갑피를 가죽으로 만든 것) 중 그 밖의 것",
       "Other footwear with uppers of leather",
       ("가죽 구두", "남성용 가죽 로퍼", "가죽 워커"), ("Leather shoes", "Leather loafers", "Leather boots"),
       ("갑피는 소가죽, 바깥 바닥은 고무", "갑피는 천연 가죽, 바깥 바닥은 합성고무")),
    _p("6402.99-0000", _SHOES, "그 밖의 신발(바깥 바닥과 갑피를 고무나 플라스틱으로 만든 것)",
       "Other footwear with outer soles and uppers of rubber or plastics",
       ("고무 장화", "EVA 슬리퍼", "샌들", "운동화"), ("Rubber rain boots", "EVA clogs", "Plastic sandals"),
       ("갑피와 바깥 바닥 모두 고무", "갑피와 바깥 바닥 모두 EVA 수지"), weight=0.8),
    _p("6406.20-0000", _SHOES, "신발의 부분품 중 바깥 바닥과 굽(고무나 플라스틱으로 만든 것)",
       "Outer soles and heels, of rubber or plastics",
       ("신발 밑창", "고무 아웃솔", "운동화 밑창"), ("Rubber outsole", "Shoe outer sole"),
       ("고무로 성형한 신발용 바깥 바닥(갑피 미부착)", "EVA 및 고무로 성형한 밑창 부분품"),
       weight=0.6, part_style="sole", image="part"),
    # --- computers: whole machines against units and parts
    _p("8471.30-0000", _COMPUTERS, "휴대용 자동자료처리기계(중량이 10킬로그램 이하인 것)",
       "Portable automatic data processing machines, weighing not more than 10 kg",
       ("노트북 컴퓨터", "휴대용 컴퓨터", "2-in-1 노트북"),
       ("Notebook computer", "Laptop PC", "Portable computer"),
       ("알루미늄 하우징", "마그네슘 합금 하우징", "플라스틱 하우징"), weight=1.4),
    _p("8471.50-1000", _COMPUTERS, "처리장치(기억장치ㆍ입력장치ㆍ출력장치를 함께 갖춘 것)",
       "Processing units, whether or not containing storage, input or output units",
       ("데스크톱 컴퓨터 본체", "미니 PC", "데스크톱 PC"), ("Desktop computer", "Mini PC", "Desktop PC"),
       ("강철 및 플라스틱 케이스", "알루미늄 케이스"), spec="메모리 {c}GB, 저장장치 {a}{b}0GB",
       c_values=(8, 16, 32, 64)),
    _p("8471.60-2000", _COMPUTERS, "입력장치나 출력장치 중 키보드와 마우스",
       "Input or output units: keyboards and mice",
       ("무선 키보드", "기계식 키보드", "무선 마우스"), ("Wireless keyboard", "Mechanical keyboard", "Wireless mouse"),
       ("ABS 플라스틱 하우징", "알루미늄 상판과 플라스틱 하우징"), spec="키 {c}개, 무게 {a}{b}0g",
       c_values=(87, 104, 108)),
    _p("8473.30-1000", _COMPUTERS, "제8471호 기계의 부분품과 부속품 중 인쇄회로조립품",
       "Parts and accessories of the machines of heading 84.71: printed circuit assemblies",
       ("노트북 메인보드", "컴퓨터 마더보드", "메인보드 어셈블리", "컴퓨터 부분품"),
       ("Laptop motherboard", "Main board assembly", "PC mainboard"),
       ("인쇄회로기판에 CPU 소켓, 메모리 슬롯 등 전자부품을 실장한 것",), part_style="pc",
       image="pcb"),
    _p("8473.30-9000", _COMPUTERS, "제8471호 기계의 부분품과 부속품 중 그 밖의 것",
       "Parts and accessories of the machines of heading 84.71: other",
       ("노트북 힌지", "노트북 하판 케이스", "노트북 키보드 모듈", "컴퓨터 부분품"),
       ("Laptop hinge", "Laptop bottom case", "Keyboard assembly for notebook"),
       ("알루미늄 다이캐스팅 부분품", "플라스틱 사출 성형 부분품"), part_style="pc", image="part"),
    # --- phones: smartphones / other cellular phones / their parts / earphones
    _p("8517.13-0000", _PHONES, "전화기 중 스마트폰",
       "Smartphones", ("스마트폰", "휴대전화기", "5G 스마트폰"), ("Smartphone", "Mobile phone", "5G smartphone"),
       ("강화유리 전면과 알루미늄 프레임", "플라스틱 후면 커버", "티타늄 프레임"), weight=1.6),
    _p("8517.14-0000", _PHONES, "셀룰러 통신망용이나 그 밖의 무선통신망용 그 밖의 전화기",
       "Other telephones for cellular networks or for other wireless networks",
       ("피처폰", "폴더형 휴대전화기", "효도폰", "휴대전화기"), ("Feature phone", "Flip mobile phone", "Mobile phone"),
       ("플라스틱 하우징과 물리 키패드", "플라스틱 폴더형 하우징"), weight=0.6),
    _p("8517.79-0000", _PHONES, "제8517호 기기의 부분품 중 그 밖의 것",
       "Parts of the apparatus of heading 85.17: other",
       ("스마트폰 디스플레이 모듈", "휴대폰 후면 커버", "휴대폰 카메라 모듈", "휴대전화기 부분품"),
       ("Display assembly for smartphone", "Back cover for mobile phone", "Camera module for mobile phone"),
       ("OLED 패널과 터치 센서를 결합한 조립품", "강화유리 및 알루미늄 프레임 부분품"),
       part_style="phone", image="pcb"),
    _p("8518.30-0000", _PHONES, "헤드폰과 이어폰(마이크로폰과 결합된 것인지에 상관없다)",
       "Headphones and earphones, whether or not combined with a microphone",
       ("무선 이어폰", "블루투스 이어폰", "헤드폰"), ("Wireless earbuds", "Bluetooth earphones", "Headphones"),
       ("플라스틱 하우징과 충전 케이스", "ABS 플라스틱 및 실리콘 이어팁"),
       spec="배터리 {c}mAh, 무게 {a}.{b}g", c_values=(40, 50, 300, 500)),
    # --- integrated circuits: named by their part numbers
    _p("8542.31-0000", _CHIPS, "전자집적회로 중 프로세서와 컨트롤러", "Processors and controllers",
       ("마이크로컨트롤러", "MCU", "마이크로프로세서", "집적회로"), ("Microcontroller", "MCU IC", "Processor IC"),
       ("단일 칩에 CPU 코어, 메모리, 입출력 회로를 집적한 모놀리식 집적회로",), part_style="ic"),
    _p("8542.32-0000", _CHIPS, "전자집적회로 중 기억장치", "Memories",
       ("DRAM 메모리 칩", "낸드 플래시 메모리", "메모리 반도체", "집적회로"),
       ("DRAM chip", "NAND flash memory", "Memory IC"),
       ("데이터를 저장하는 메모리 셀을 집적한 모놀리식 집적회로",), part_style="ic", weight=1.3),
    _p("8542.33-0000", _CHIPS, "전자집적회로 중 증폭기", "Amplifiers",
       ("오디오 앰프 IC", "연산증폭기", "증폭기 집적회로", "집적회로"),
       ("Audio amplifier IC", "Operational amplifier"),
       ("신호 증폭 회로를 집적한 모놀리식 집적회로",), part_style="ic", weight=0.6),
    _p("8542.39-0000", _CHIPS, "전자집적회로 중 그 밖의 것", "Other electronic integrated circuits",
       ("전원관리 IC", "PMIC", "드라이버 IC", "집적회로"), ("Power management IC", "LED driver IC"),
       ("전원 변환 및 제어 회로를 집적한 모놀리식 집적회로",), part_style="ic"),
    # --- motor vehicle parts: part numbers again
    _p("8708.30-0000", _VEHICLE, "브레이크와 서보 브레이크 및 그 부분품",
       "Brakes and servo-brakes; parts thereof",
       ("브레이크 패드", "브레이크 디스크", "브레이크 캘리퍼", "자동차 부분품"),
       ("Brake pad set", "Brake disc", "Brake caliper"),
       ("강철 백플레이트에 마찰재를 접착한 것", "주철로 주조하여 가공한 것"), part_style="auto",
       weight=1.2),
    _p("8708.40-0000", _VEHICLE, "기어박스와 그 부분품", "Gear boxes and parts thereof",
       ("자동변속기", "변속기 어셈블리", "기어박스", "자동차 부분품"),
       ("Automatic transmission", "Gearbox assembly"),
       ("알루미늄 케이스에 기어와 클러치 등을 조립한 것",), part_style="auto", weight=0.7),
    _p("8708.80-0000", _VEHICLE, "서스펜션 시스템과 그 부분품(쇼크 업소버를 포함한다)",
       "Suspension systems and parts thereof (including shock-absorbers)",
       ("쇼크 업소버", "쇽업소버", "스트럿 어셈블리", "자동차 부분품"),
       ("Shock absorber", "Front strut assembly"),
       ("강관 실린더에 오일과 가스를 충전한 것", "강철 스프링과 댐퍼를 조립한 것"), part_style="auto"),
    _p("8708.99-0000", _VEHICLE, "자동차의 그 밖의 부분품과 부속품",
       "Other parts and accessories of motor vehicles",
       ("자동차용 브래킷", "머플러 행거", "자동차 부분품", "프레임 보강재"),
       ("Bracket for vehicle", "Muffler hanger", "Mounting bracket"),
       ("강판을 프레스 가공한 것", "알루미늄 합금으로 주조한 것"), part_style="auto", weight=1.3),
    # --- pumps and valves: whole machines against their parts
    _p("8413.70-1000", _FLUIDS, "그 밖의 원심펌프", "Other centrifugal pumps",
       ("원심펌프", "급수 펌프", "순환 펌프"), ("Centrifugal pump", "Water circulation pump"),
       ("주철 케이싱과 스테인리스강 임펠러, 전동기 일체형", "스테인리스강 케이싱, 전동기 일체형")),
    _p("8413.91-0000", _FLUIDS, "펌프의 부분품", "Parts of pumps",
       ("펌프 임펠러", "펌프 케이싱", "메카니컬 씰", "펌프 부분품"),
       ("Pump impeller", "Pump casing", "Mechanical seal for pump"),
       ("스테인리스강으로 주조 가공한 펌프용 부분품", "주철로 주조한 펌프용 부분품"),
       part_style="valve"),
    _p("8481.80-2000", _FLUIDS, "그 밖의 탭ㆍ코크ㆍ밸브와 이와 유사한 기구",
       "Other taps, cocks, valves and similar appliances",
       ("볼밸브", "게이트밸브", "솔레노이드 밸브"), ("Ball valve", "Gate valve", "Solenoid valve"),
       ("스테인리스강 몸체와 PTFE 시트", "황동 몸체"), weight=1.2),
    _p("8481.90-0000", _FLUIDS, "탭ㆍ코크ㆍ밸브와 이와 유사한 기구의 부분품",
       "Parts of taps, cocks, valves and similar appliances",
       ("밸브 디스크", "밸브 스템", "밸브 시트", "밸브 부분품"), ("Valve disc", "Valve stem", "Valve seat ring"),
       ("스테인리스강을 절삭 가공한 밸브용 부분품", "PTFE로 성형한 밸브용 부분품"),
       part_style="valve"),
    # --- cosmetics: make-up / skin care / hair
    _p("3304.10-1000", _COSMETICS, "입술 화장용 제품류 중 립스틱", "Lip make-up preparations: lipsticks",
       ("립스틱", "매트 립스틱", "보습 립스틱"), ("Lipstick", "Matte lipstick", "Moisture lip color"),
       ("왁스, 오일, 색소로 구성된 고형", "피마자유, 밀랍, 산화철 색소로 구성된 고형"),
       image="lipstick", brands=("MAC", "ESTEE LAUDER", "ROM&ND", "CLIO", "3CE"),
       spec="내용량 3.{a}g, 색상 번호 {c}", c_values=tuple(range(101, 520))),
    _p("3304.91-0000", _COSMETICS, "파우더(압축한 것인지에 상관없다)", "Powders, whether or not compressed",
       ("팩트", "파우더 팩트", "루스 파우더", "메이크업 파우더"), ("Compact powder", "Loose face powder"),
       ("탤크, 마이카, 산화철 색소를 압축 성형한 분말", "탤크와 실리카로 구성된 분말"),
       image="box", weight=0.7),
    _p("3304.99-1000", _COSMETICS, "그 밖의 미용이나 메이크업용 제품류 중 기초화장용 제품류",
       "Preparations for the care of the skin",
       ("수분 크림", "에센스", "스킨 로션", "기초화장품"), ("Moisturizing cream", "Facial essence", "Skin toner"),
       ("정제수, 글리세린, 나이아신아마이드 등을 함유한 크림", "정제수, 히알루론산 등을 함유한 액상"),
       weight=1.8),
    _p("3305.10-0000", _COSMETICS, "두발용 제품류 중 샴푸", "Shampoos",
       ("샴푸", "탈모 샴푸", "두피 샴푸", "헤어 제품"), ("Shampoo", "Anti hair loss shampoo", "Scalp shampoo"),
       ("정제수, 소듐라우레스설페이트 등 계면활성제를 함유한 액상",)),
    _p("3305.90-0000", _COSMETICS, "그 밖의 두발용 제품류", "Other preparations for use on the hair",
       ("헤어 트리트먼트", "헤어 컨디셔너", "헤어 에센스", "헤어 제품"),
       ("Hair treatment", "Hair conditioner", "Hair oil essence"),
       ("정제수, 세테아릴알코올, 실리콘 오일 등을 함유한 크림상", "실리콘 오일과 식물성 오일을 함유한 액상")),
    # --- food preparations and drinks
    _p("2106.90-9091", _FOOD, "따로 분류되지 않은 조제 식료품 중 건강기능식품",
       "Food preparations not elsewhere specified: health functional foods",
       ("건강기능식품", "비타민 정제", "프로바이오틱스 캡슐", "오메가3 캡슐"),
       ("Health supplement", "Vitamin tablets", "Probiotics capsules"),
       ("비타민C, 결정셀룰로스, 스테아린산마그네슘을 혼합하여 타정한 것",
        "정제어유, 젤라틴 캡슐, 비타민E로 구성된 것"), image="bottle", weight=1.5),
    _p("2106.90-9099", _FOOD, "따로 분류되지 않은 조제 식료품 중 기타",
       "Food preparations not elsewhere specified: other",
       ("조제 식료품", "떡볶이 소스 믹스", "식품 혼합물", "분말 음료 베이스"),
       ("Food preparation", "Seasoning mix", "Beverage base powder"),
       ("설탕, 전분, 향료 등을 혼합한 분말", "물엿, 고추장, 향신료를 혼합한 조제품"), weight=1.3),
    _p("1905.31-0000", _FOOD, "스위트 비스킷", "Sweet biscuits",
       ("쿠키", "버터 쿠키", "초코칩 쿠키", "비스킷"), ("Butter cookies", "Chocolate chip cookies", "Sweet biscuits"),
       ("밀가루, 설탕, 버터를 혼합하여 구운 것", "밀가루, 설탕, 초콜릿칩을 혼합하여 구운 것")),
    _p("1905.90-1000", _FOOD, "그 밖의 빵ㆍ파이ㆍ케이크 중 빵", "Other bread, pastry and cakes: bread",
       ("크루아상", "식빵", "냉동 생지 빵", "베이커리 제품"), ("Croissant", "Sliced bread", "Baked bread"),
       ("밀가루, 효모, 버터 등을 반죽하여 구운 것",), weight=0.7),
    _p("2202.10-0000", _FOOD, "물(광천수와 탄산수 포함, 설탕이나 감미료ㆍ향미를 첨가한 것)",
       "Waters containing added sugar or other sweetening matter or flavoured",
       ("탄산음료", "사이다", "에이드 음료", "음료"), ("Carbonated soft drink", "Lemon lime soda"),
       ("정제수, 액상과당, 탄산가스, 향료로 구성된 것",), image="bottle", weight=0.8),
    _p("2202.99-0000", _FOOD, "그 밖의 무알코올 음료", "Other non-alcoholic beverages",
       ("이온음료", "두유 음료", "커피 음료", "음료"), ("Sports drink", "Soy milk drink", "Ready to drink coffee"),
       ("정제수, 과당, 전해질 성분으로 구성된 것", "대두 추출액, 설탕 등을 혼합한 것"), image="bottle"),
    # --- toys and games
    _p("9503.00-3800", _TOYS, "축소 모형과 이와 유사한 오락용 모형(작동하는 것인지에 상관없다)",
       "Reduced-size scale models and similar recreational models, working or not",
       ("무선조종 자동차 완구", "RC카", "전동 완구 자동차"), ("RC car toy", "Remote control car", "Electric toy car"),
       ("ABS 플라스틱 차체", "PVC 플라스틱 및 고무 바퀴"), weight=1.2),
    _p("9503.00-3400", _TOYS, "조립용 완구 세트", "Construction sets",
       ("블록 완구", "조립 블록 세트", "브릭 장난감"), ("Building blocks set", "Construction toy bricks"),
       ("ABS 플라스틱 블록",)),
    _p("9503.00-2100", _TOYS, "인형", "Dolls",
       ("봉제 인형", "패션 인형", "캐릭터 인형"), ("Plush doll", "Fashion doll", "Character figure doll"),
       ("폴리에스테르 원단에 충전재를 채운 것", "PVC 플라스틱으로 성형한 것")),
    _p("9504.50-0000", _TOYS, "비디오게임 콘솔과 기기", "Video game consoles and machines",
       ("비디오 게임기", "휴대용 게임기", "게임 콘솔"), ("Video game console", "Handheld game console"),
       ("플라스틱 하우징에 처리장치와 컨트롤러를 갖춘 것",), image="laptop",
       brands=("NINTENDO", "SONY", "MICROSOFT", "VALVE"), spec="저장용량 {c}GB, 무게 {a}{b}0g",
       c_values=(32, 64, 512, 825)),
    # --- pens and pencils
    _p("9608.10-0000", _PENS, "볼펜", "Ball point pens",
       ("볼펜", "유성 볼펜", "젤 잉크 볼펜", "노크식 볼펜"),
       ("Ball point pen", "Gel ink ballpoint pen", "Retractable ballpoint pen"),
       ("플라스틱(PP) 몸체", "알루미늄 몸체", "황동 몸체에 크롬 도금"), weight=1.3),
    _p("9608.20-0000", _PENS, "펠트팁과 그 밖의 포러스팁 펜과 마커",
       "Felt tipped and other porous-tipped pens and markers",
       ("마커펜", "보드마카", "형광펜", "네임펜"), ("Marker pen", "Whiteboard marker", "Highlighter"),
       ("폴리프로필렌 몸체에 섬유 재질 팁", "펠트 팁과 알코올계 잉크")),
    _p("9608.60-0000", _PENS, "볼펜용 리필(볼펜 팁과 잉크 저장소로 구성된 것)",
       "Refills for ball point pens, comprising the ball point and ink-reservoir",
       ("볼펜 리필심", "볼펜심", "리필 잉크 카트리지"), ("Ballpoint pen refill", "Pen refill"),
       ("황동 팁과 플라스틱 잉크 튜브로 구성된 것",), part_style="refill", weight=0.6),
    _p("9609.10-0000", _PENS, "연필과 크레용(흑연이나 색연필심을 외장한 것)",
       "Pencils and crayons, with leads encased in a sheath",
       ("연필", "색연필", "HB 연필"), ("Pencil", "Colour pencils", "Graphite pencil HB"),
       ("흑연심을 목재로 외장한 것", "색연필심을 목재로 외장한 것"), weight=0.8),
    # --- bags: textile / plastic / leather outer surfaces
    _p("4202.92-2000", _BAGS, "그 밖의 용기(외부 표면이 방직용 섬유재료로 된 것) 중 배낭",
       "Other containers with outer surface of textile materials: rucksacks",
       ("배낭", "백팩", "등산용 배낭", "노트북 백팩"), ("Backpack", "Hiking backpack", "Laptop backpack"),
       ("외부 표면은 폴리에스테르 직물", "외부 표면은 나일론 직물(PU 코팅)"), weight=1.4),
    _p("4202.12-2000", _BAGS, "트렁크ㆍ슈트케이스(외부 표면이 플라스틱이나 방직용 섬유재료로 된 것)",
       "Trunks and suitcases with outer surface of plastics or of textile materials",
       ("여행용 캐리어", "하드 캐리어", "기내용 캐리어", "여행가방"),
       ("Hard shell suitcase", "Carry-on luggage", "Trolley case"),
       ("외부 표면은 폴리카보네이트 플라스틱", "외부 표면은 ABS 플라스틱", "외부 표면은 나일론 직물")),
    _p("4202.22-1000", _BAGS, "핸드백(외부 표면이 플라스틱 시트나 방직용 섬유재료로 된 것)",
       "Handbags with outer surface of plastic sheeting or of textile materials",
       ("여성용 핸드백", "숄더백", "토트백", "가방"), ("Women's handbag", "Shoulder bag", "Tote bag"),
       ("외부 표면은 폴리에스테르 직물", "외부 표면은 PVC 시트")),
    _p("4202.21-0000", _BAGS, "핸드백(외부 표면이 가죽이나 콤퍼지션 레더로 된 것)",
       "Handbags with outer surface of leather or of composition leather",
       ("가죽 핸드백", "소가죽 숄더백", "가죽 토트백", "가방"), ("Leather handbag", "Leather shoulder bag"),
       ("외부 표면은 소가죽", "외부 표면은 양가죽"), weight=0.8),
    # --- lighting (HS2022 headings; their HS2017 predecessors are among the old codes)
    _p("9405.11-1000", _LAMPS, "샹들리에와 그 밖의 천장용이나 벽용 전기조명기구(LED 광원 전용)",
       "Chandeliers and other electric ceiling or wall lighting fittings, for LED light sources",
       ("LED 천장등", "LED 방등", "LED 벽등"), ("LED ceiling light", "LED wall lamp"),
       ("알루미늄 본체와 아크릴 확산판", "강철 본체와 폴리카보네이트 커버")),
    _p("9405.21-1000", _LAMPS, "전기식 탁상용ㆍ책상용ㆍ침대용 램프(LED 광원 전용)",
       "Electric table, desk, bedside or floor-standing lamps, for LED light sources",
       ("LED 스탠드", "LED 책상 스탠드", "LED 무드등"), ("LED desk lamp", "LED table lamp"),
       ("알루미늄 및 ABS 플라스틱 본체", "강철 및 폴리카보네이트 본체")),
    _p("9405.42-0000", _LAMPS, "그 밖의 전기조명기구(LED 광원 전용)",
       "Other electric luminaires and lighting fittings, for LED light sources",
       ("LED 투광등", "LED 조명등", "LED 바 조명", "LED 무드등"),
       ("LED flood light", "LED lighting fixture", "LED strip light"),
       ("알루미늄 방열 본체", "강철 및 폴리카보네이트 본체"), weight=1.2),
    _p("8539.52-0000", _LAMPS, "발광다이오드(LED) 램프", "Light-emitting diode (LED) lamps",
       ("LED 전구", "LED 램프", "LED 형광등 램프"), ("LED bulb", "LED lamp E26", "LED tube lamp"),
       ("폴리카보네이트 글로브와 알루미늄 방열판, E26 소켓", "유리관 내부에 LED 칩을 배열한 램프")),
    _p("9405.92-0000", _LAMPS, "조명기구의 부분품(플라스틱으로 만든 것)",
       "Parts of lamps and lighting fittings, of plastics",
       ("조명기구 확산 커버", "LED 등기구 커버", "조명 부분품"),
       ("Diffuser cover for LED luminaire", "Plastic lamp cover"),
       ("폴리카보네이트로 사출 성형한 확산 커버", "아크릴 수지로 성형한 커버"),
       part_style="lamp", image="part", weight=0.6),
    # --- furniture: seats by frame, other furniture by material, parts of seats
    _p("9401.71-0000", _FURNITURE, "그 밖의 의자(금속제 프레임으로 덧씌운 것)",
       "Other seats, with metal frames, upholstered",
       ("사무용 의자", "메쉬 의자", "회전 의자", "의자"), ("Office chair", "Mesh task chair", "Swivel chair"),
       ("강철 프레임에 폴리에스테르 메쉬를 덧씌운 것", "강철 프레임에 우레탄 폼과 직물을 덧씌운 것"),
       weight=1.3),
    _p("9401.61-0000", _FURNITURE, "그 밖의 의자(목제 프레임으로 덧씌운 것)",
       "Other seats, with wooden frames, upholstered",
       ("원목 의자", "패브릭 식탁 의자", "의자"), ("Upholstered wooden chair", "Fabric dining chair"),
       ("원목 프레임에 직물을 덧씌운 것", "고무나무 프레임에 인조가죽을 덧씌운 것")),
    _p("9403.20-0000", _FURNITURE, "그 밖의 금속제 가구", "Other metal furniture",
       ("철제 선반", "금속 책상", "스틸 수납장", "가구"), ("Steel shelf", "Metal desk", "Steel storage cabinet"),
       ("분체 도장한 강철", "알루미늄 프레임과 강판")),
    _p("9403.60-0000", _FURNITURE, "그 밖의 목제 가구", "Other wooden furniture",
       ("원목 식탁", "원목 책상", "목재 수납장", "가구"), ("Solid wood dining table", "Wooden desk", "Wooden cabinet"),
       ("참나무 원목", "파티클보드에 멜라민 마감")),
    _p("9401.99-0000", _FURNITURE, "의자의 부분품 중 그 밖의 것", "Parts of seats: other",
       ("의자 가스 실린더", "의자 바퀴", "의자 팔걸이", "의자 부분품"),
       ("Gas lift cylinder for chair", "Chair caster", "Chair armrest"),
       ("강철 실린더에 질소 가스를 충전한 것", "나일론으로 사출 성형한 부분품"),
       part_style="furn", image="part", weight=0.7),
)  # fmt: skip

_MAIN_BY_HS = {p.hs: p for p in PRODUCTS}


def _tail(hs: str, ko: str, en: str, image: str, material: str) -> _Product:
    return _Product(hs, _MISC, ko, en, (ko,), (en,), (material,), image=image)


# The long tail: codes the portal ruled on once or twice (at most two cases each here).
# Their headings are none of the main codes', except 9405.49 (where an old code moved).
TAIL_PRODUCTS: tuple[_Product, ...] = (
    _tail("0303.54-0000", "냉동 고등어", "Frozen mackerel", "box", "머리와 내장을 제거하지 않은 통마리"),
    _tail("0306.17-1000", "냉동 새우", "Frozen shrimps and prawns", "box", "껍질을 벗긴 흰다리새우"),
    _tail("0402.21-1000", "전지분유", "Whole milk powder", "box", "유지방 26% 이상의 분말"),
    _tail("0406.10-1000", "모차렐라 치즈", "Mozzarella cheese", "box", "숙성하지 않은 생치즈"),
    _tail("0409.00-0000", "천연꿀", "Natural honey", "bottle", "아카시아 꽃꿀 100%"),
    _tail("0713.33-1000", "건조한 강낭콩", "Dried kidney beans", "box", "껍질을 벗기지 않은 건조 두류"),
    _tail("0802.12-0000", "아몬드(껍데기를 벗긴 것)", "Almonds, shelled", "box", "볶지 않은 아몬드 알맹이"),
    _tail("0804.50-2000", "망고", "Mangoes, fresh", "box", "신선한 상태의 생과"),
    _tail("0901.21-0000", "볶은 커피(카페인 포함)", "Coffee, roasted, not decaffeinated", "box",
          "아라비카 원두를 볶은 것"),
    _tail("0902.30-1000", "홍차", "Black tea", "box", "발효시킨 찻잎을 티백에 담은 것"),
    _tail("1006.30-9000", "정미한 쌀", "Semi-milled or wholly milled rice", "box", "도정한 멥쌀"),
    _tail("1509.20-0000", "엑스트라 버진 올리브유", "Extra virgin olive oil", "bottle",
          "압착하여 얻은 올리브유"),
    _tail("1704.90-9000", "젤리 캔디", "Sugar confectionery, jelly", "box", "설탕, 물엿, 젤라틴 혼합물"),
    _tail("1806.32-0000", "초콜릿 바", "Chocolate bars, not filled", "box", "카카오매스, 설탕, 코코아버터"),
    _tail("2008.99-9000", "조제한 과실 칩", "Prepared fruit chips", "box", "사과를 건조하여 조미한 것"),
    _tail("2103.90-9000", "혼합 조미료 소스", "Mixed condiments and seasonings", "bottle",
          "간장, 설탕, 마늘 등을 혼합한 소스"),
    _tail("2309.10-0000", "개 사료(소매용)", "Dog food, put up for retail sale", "box",
          "곡물과 육분을 혼합하여 성형한 것"),
    _tail("2523.29-0000", "포틀랜드 시멘트", "Portland cement", "box", "클링커와 석고를 분쇄한 분말"),
    _tail("2710.19-9000", "윤활유", "Lubricating oils", "bottle", "석유계 기유에 첨가제를 혼합한 것"),
    _tail("2836.50-0000", "탄산칼슘", "Calcium carbonate", "box", "백색 분말(순도 98%)"),
    _tail("2915.21-0000", "아세트산", "Acetic acid", "bottle", "순도 99.8% 액상"),
    _tail("3004.90-9000", "의약품(정제)", "Medicaments, in measured doses", "bottle",
          "주성분을 함유한 필름코팅정"),
    _tail("3208.20-9000", "아크릴 도료", "Paints based on acrylic polymers", "bottle",
          "아크릴 수지를 유기용제에 분산한 것"),
    _tail("3307.49-0000", "실내 방향제", "Preparations for perfuming rooms", "bottle",
          "향료와 에탄올을 혼합한 액상"),
    _tail("3402.50-1000", "세탁용 세제", "Washing preparations, put up for retail sale", "bottle",
          "계면활성제와 효소를 함유한 액상"),
    _tail("3506.91-0000", "접착제", "Adhesives based on polymers", "bottle", "에폭시 수지계 2액형"),
    _tail("3808.91-0000", "살충제", "Insecticides", "bottle", "피레스로이드계 성분을 함유한 에어로졸"),
    _tail("3824.99-9000", "화학 조제품", "Chemical preparations n.e.s.", "bottle",
          "유기 화합물과 무기 화합물의 혼합물"),
    _tail("3901.10-0000", "저밀도 폴리에틸렌", "Polyethylene, specific gravity below 0.94", "box",
          "펠릿 형태의 1차 제품"),
    _tail("3920.62-1000", "PET 필름", "Film of poly(ethylene terephthalate)", "box",
          "두께 50마이크로미터의 롤 형태"),
    _tail("3923.30-0000", "플라스틱 병", "Carboys, bottles and flasks of plastics", "bottle",
          "PET로 블로 성형한 빈 용기"),
    _tail("3924.10-0000", "플라스틱 식기", "Tableware of plastics", "box", "멜라민 수지로 성형한 접시"),
    _tail("3926.90-9000", "플라스틱 제품", "Other articles of plastics", "part", "폴리아미드로 사출 성형한 것"),
    _tail("4011.10-0000", "승용차용 타이어", "New pneumatic tyres for motor cars", "part",
          "고무제 래디얼 타이어"),
    _tail("4015.19-0000", "고무 장갑", "Gloves of vulcanised rubber", "box", "니트릴 고무로 성형한 것"),
    _tail("4016.93-0000", "고무 개스킷", "Gaskets, washers and seals of rubber", "part",
          "가황한 합성고무로 성형한 링"),
    _tail("4412.33-0000", "합판", "Plywood", "box", "활엽수 단판을 적층 접착한 것"),
    _tail("4819.10-0000", "골판지 상자", "Cartons and boxes of corrugated paper", "box",
          "골판지를 접어 만든 상자"),
    _tail("4821.10-0000", "인쇄된 종이 라벨", "Printed paper labels", "box", "롤 형태의 점착 라벨"),
    _tail("4911.10-0000", "상업용 카탈로그", "Trade advertising material, catalogues", "box",
          "인쇄한 책자"),
    _tail("5209.42-0000", "데님 직물(면)", "Denim of cotton", "box", "면 100% 능직물(중량 350g/㎡)"),
    _tail("5407.61-0000", "폴리에스테르 장섬유 직물", "Woven fabrics of polyester filaments", "box",
          "폴리에스테르 100% 평직물"),
    _tail("5603.14-0000", "부직포", "Nonwovens of man-made filaments", "box", "폴리프로필렌 스펀본드"),
    _tail("6302.60-0000", "면 타월", "Toilet and kitchen linen of cotton terry", "box",
          "면 100% 테리 직물"),
    _tail("6307.90-9000", "방직용 섬유 제품", "Other made up textile articles", "box",
          "폴리에스테르 직물을 봉제한 것"),
    _tail("6505.00-9000", "모자", "Hats and other headgear, knitted", "box", "아크릴 메리야스 편물제"),
    _tail("6802.93-0000", "화강암 가공품", "Worked granite", "box", "절단하여 표면을 연마한 판재"),
    _tail("6907.21-0000", "세라믹 타일", "Ceramic tiles", "box", "흡수율 0.5% 이하의 자기질"),
    _tail("7013.37-0000", "유리컵", "Drinking glasses", "bottle", "소다석회 유리를 성형한 것"),
    _tail("7113.19-0000", "금 반지", "Articles of jewellery of precious metal", "box",
          "18K 금으로 만든 장신구"),
    _tail("7210.49-0000", "아연도금 강판", "Flat-rolled iron, plated with zinc", "box", "용융아연도금 코일"),
    _tail("7304.41-0000", "스테인리스강 관", "Tubes of stainless steel, cold-drawn", "part",
          "이음매 없는 냉간인발 강관"),
    _tail("7318.15-0000", "볼트", "Screws and bolts of iron or steel", "part", "합금강 육각 볼트"),
    _tail("7323.93-0000", "스테인리스 주방용품", "Kitchenware of stainless steel", "box",
          "스테인리스강을 프레스 성형한 냄비"),
    _tail("7326.90-9000", "철강 제품", "Other articles of iron or steel", "part", "강판을 절곡 용접한 것"),
    _tail("7408.11-0000", "정제 구리선", "Wire of refined copper", "part", "단면 최대치수 6mm 초과"),
    _tail("7604.29-0000", "알루미늄 프로파일", "Profiles of aluminium alloys", "part", "압출 성형한 형재"),
    _tail("8205.59-9000", "수공구", "Other hand tools", "part", "공구강을 단조 가공한 것"),
    _tail("8211.91-0000", "식탁용 나이프", "Table knives having fixed blades", "part",
          "스테인리스강 날과 손잡이"),
    _tail("8302.42-0000", "가구용 경첩", "Base metal mountings for furniture", "part",
          "아연 합금 다이캐스팅"),
    _tail("8409.91-0000", "엔진용 피스톤", "Parts for spark-ignition engines", "part",
          "알루미늄 합금 단조 피스톤"),
    _tail("8414.51-0000", "선풍기", "Table, floor, wall or roof fans", "part", "플라스틱 날개와 모터"),
    _tail("8418.10-0000", "냉장고", "Combined refrigerator-freezers", "box", "냉장실과 냉동실 일체형"),
    _tail("8421.21-0000", "정수기", "Machinery for filtering or purifying water", "box",
          "역삼투압 필터를 갖춘 것"),
    _tail("8443.32-0000", "레이저 프린터", "Printers capable of connecting to a computer", "box",
          "흑백 레이저 방식"),
    _tail("8450.11-0000", "세탁기", "Fully-automatic washing machines", "box", "드럼식 10kg 용량"),
    _tail("8482.10-0000", "볼 베어링", "Ball bearings", "part", "고탄소 크롬강 궤도륜과 볼"),
    _tail("8483.40-0000", "기어", "Gears and gearing", "part", "강철을 절삭 가공한 평기어"),
    _tail("8504.40-9000", "충전기", "Static converters", "box", "USB 출력 전원 어댑터"),
    _tail("8507.60-0000", "리튬이온 축전지", "Lithium-ion accumulators", "box", "원통형 셀을 조립한 팩"),
    _tail("8509.40-0000", "믹서기", "Food grinders, mixers and juice extractors", "box",
          "전동기를 내장한 가정용"),
    _tail("8516.31-0000", "헤어드라이어", "Hair dryers", "box", "전열식 송풍 구조"),
    _tail("8516.50-0000", "전자레인지", "Microwave ovens", "box", "마그네트론 가열 방식"),
    _tail("8523.51-0000", "USB 메모리", "Solid-state non-volatile storage devices", "chip",
          "플래시 메모리를 내장한 것"),
    _tail("8525.89-0000", "디지털 카메라", "Digital cameras", "box", "CMOS 이미지 센서를 갖춘 것"),
    _tail("8528.72-0000", "텔레비전", "Reception apparatus for television, colour", "laptop",
          "LCD 패널을 갖춘 수신기기"),
    _tail("8536.69-9000", "플러그와 소켓", "Plugs and sockets", "part", "1,000볼트 이하용"),
    _tail("8544.42-9000", "커넥터 부착 케이블", "Electric conductors fitted with connectors", "part",
          "구리 도체에 PVC 피복"),
    _tail("9004.10-0000", "선글라스", "Sunglasses", "box", "폴리카보네이트 렌즈와 금속 테"),
    _tail("9018.39-0000", "카테터", "Catheters, cannulae and the like", "part", "의료용 실리콘 튜브"),
    _tail("9025.19-0000", "디지털 온도계", "Thermometers, not combined", "box", "전자식 표시부를 갖춘 것"),
    _tail("9404.90-0000", "베개", "Pillows and cushions", "box", "폴리에스테르 충전재"),
    _tail("9506.91-0000", "실내 운동기구", "Articles for general physical exercise", "part",
          "강철 프레임의 실내용"),
    _tail("9603.21-0000", "칫솔", "Tooth brushes", "pen", "나일론 모와 플라스틱 손잡이"),
    _tail("9613.10-0000", "일회용 가스라이터", "Pocket lighters, gas fuelled, non-refillable", "box",
          "부탄가스를 충전한 것"),
    _tail("9617.00-0000", "보온병", "Vacuum flasks", "bottle", "스테인리스강 이중벽 진공 구조"),
    _tail("9405.49-1000", "그 밖의 전기조명기구(형광등 기구)", "Other electric luminaires, other", "lamp",
          "형광램프용 강철 등기구"),
)  # fmt: skip

# Goods the demo corpus never rules on (codes it does not have): unfamiliar requests.
UNFAMILIAR_PRODUCTS: tuple[_Product, ...] = (
    _tail("2204.21-1000", "레드 와인", "Wine of fresh grapes, red", "bottle", "알코올 도수 13.5%"),
    _tail("8711.60-1000", "전기 자전거", "Cycles with an electric motor for propulsion", "part",
          "리튬이온 배터리와 허브 모터를 갖춘 것"),
    _tail("9102.11-0000", "손목시계", "Wrist-watches, electrically operated", "box",
          "스테인리스강 케이스와 가죽 밴드"),
    _tail("9207.10-0000", "디지털 피아노", "Keyboard instruments, electric", "laptop",
          "88건반 해머 액션"),
    _tail("6601.91-0000", "접이식 우산", "Umbrellas having a telescopic shaft", "pen",
          "폴리에스테르 원단과 강철 살"),
    _tail("9506.31-0000", "골프채", "Golf clubs, complete", "pen", "티타늄 헤드와 카본 샤프트"),
    _tail("8467.21-0000", "전동 드릴", "Drills with self-contained electric motor", "part",
          "충전식 18V 배터리"),
    _tail("0805.10-0000", "오렌지", "Oranges, fresh", "box", "신선한 상태의 생과"),
    _tail("2402.20-0000", "궐련", "Cigarettes containing tobacco", "box", "필터가 부착된 궐련 20개비"),
    _tail("8806.22-0000", "무인 비행기(드론)", "Unmanned aircraft, weight 250 g to 7 kg", "toy",
          "카메라와 짐벌을 갖춘 쿼드콥터"),
    _tail("7108.13-0000", "금괴", "Gold in semi-manufactured forms", "box", "순도 99.99%의 골드바"),
    _tail("0301.11-0000", "관상용 열대어", "Ornamental freshwater fish, live", "box", "산 채로 운송"),
    _tail("9202.90-0000", "어쿠스틱 기타", "Other string musical instruments", "pen",
          "가문비나무 상판과 마호가니 측판"),
    _tail("6306.22-0000", "캠핑용 텐트", "Tents of synthetic fibres", "backpack",
          "폴리에스테르 원단과 알루미늄 폴"),
)  # fmt: skip


@dataclass(frozen=True)
class _OldCode:
    """A code of the older edition that a later one renumbered, split or moved."""

    hs: str  # portal spelling in the older edition
    name_ko: str
    name_en: str
    goods: tuple[str, ...]  # the current codes whose goods it covered (their texts)
    change: str  # what became of it: renumbered, split, moved


OLD_CODES: tuple[_OldCode, ...] = (
    # HSK renumberings inside a surviving subheading: one current code under it -> remapped
    _OldCode("0202.30-1000", "쇠고기(냉동, 뼈 없는 것) 중 갈비 부위", "Frozen boneless beef: rib cuts",
             ("0202.30-0000",), "renumbered"),
    _OldCode("0202.30-9000", "쇠고기(냉동, 뼈 없는 것) 중 기타", "Frozen boneless beef: other",
             ("0202.30-0000",), "renumbered"),
    # HSK splits: several current codes under the surviving prefix -> split
    _OldCode("2106.90-9090", "따로 분류되지 않은 조제 식료품 중 기타",
             "Food preparations not elsewhere specified: other",
             ("2106.90-9091", "2106.90-9099"), "split"),
    _OldCode("8473.30-0000", "제8471호 기계의 부분품과 부속품",
             "Parts and accessories of the machines of heading 84.71",
             ("8473.30-1000", "8473.30-9000"), "split"),
    _OldCode("9503.00-3000", "축소 모형과 조립용 완구", "Scale models and construction sets",
             ("9503.00-3400", "9503.00-3800"), "split"),
    # HS2022 deleted subheadings: the correlation rows name where they went
    _OldCode("8517.12-0000", "셀룰러 통신망용이나 그 밖의 무선통신망용 전화기",
             "Telephones for cellular networks or for other wireless networks",
             ("8517.13-0000", "8517.14-0000"), "moved"),
    _OldCode("9405.40-9000", "그 밖의 전기조명기구 중 기타", "Other electric lamps and lighting fittings",
             ("9405.42-0000",), "moved"),
    _OldCode("8539.50-0000", "발광다이오드(LED) 램프", "Light-emitting diode (LED) lamps",
             ("8539.52-0000",), "moved"),
)  # fmt: skip

# HS2017 subheadings that HS2022 deleted -> the HS2022 subheadings they went to
HS2022_CHANGES: dict[str, tuple[str, ...]] = {
    "851712": ("851713", "851714"),
    "853950": ("853951", "853952"),
    "940510": ("940511", "940519"),
    "940520": ("940521", "940529"),
    "940540": ("940541", "940542", "940549"),
}
# the main codes that were already codes of the older edition
_UNCHANGED = tuple(
    p
    for p in PRODUCTS
    if p.hs not in {hs for old in OLD_CODES for hs in old.goods}
    and p.hs10[:6] not in {c for targets in HS2022_CHANGES.values() for c in targets}
)
DEMO_CURRENT_EDITION = "demo-2026"
DEMO_OLDER_EDITION = "demo-2017"
_OLDER_HS = "HS2017"  # the older edition's HS version, as correlation rows name it

# Sets sold together that end with one code per article (a multi-code case).
_MULTI_CODE = "① 6109.10-1000 ② 6109.90-3010"
_OFFICES = ("관세평가분류원",) * 9 + ("서울본부세관",)
_MODEL_CHARS = "ABCDEFGHJKLMNPRSTUVWXZ"
TAIL_SHARE = 0.14  # of the cases: codes with one or two rulings
OLD_SHARE = 0.12  # of the cases, when older_years is given: rulings of the older edition
NOISE_SHARE = 0.03  # of the main cases: decided under a sibling's code


def _letters(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(_MODEL_CHARS) for _ in range(n))


def _digits(rng: random.Random, n: int) -> str:
    return "".join(str(rng.randint(0, 9)) for _ in range(n))


def _model_no(rng: random.Random) -> str:
    letters = _letters(rng, rng.randint(1, 3))
    return (
        f"{letters}-{rng.randint(10, 9999)}"
        if rng.random() < 0.5
        else f"{letters}{rng.randint(100, 999)}"
    )


def _part_no(style: str, rng: random.Random) -> str:
    """A part number in the manufacturers' habits of each kind of part."""

    def d(n: int) -> str:
        return _digits(rng, n)

    def L(n: int) -> str:
        return _letters(rng, n)

    if style == "auto":  # 58101-2WA00, 54651-D3000
        return f"{d(5)}-{d(1)}{L(2)}{d(2)}" if rng.random() < 0.5 else f"{d(5)}-{L(1)}{d(4)}"
    if style == "ic":
        return rng.choice(
            (
                f"K4A{d(1)}G{d(3)}{L(2)}-{L(4)}",
                f"STM32F{d(3)}{L(1)}{d(1)}T{d(1)}",
                f"MT{d(2)}A{d(1)}G{d(2)}{L(2)}-{d(3)}{L(1)}",
                f"TPS{d(5)}{L(3)}R",
            )
        )
    if style == "phone":  # GH82-23100A
        return f"GH{d(2)}-{d(5)}{L(1)}"
    if style == "pc":
        return f"5B{d(2)}{L(1)}{d(5)}" if rng.random() < 0.5 else f"L{d(2)}{L(1)}{d(4)}-{d(2)}"
    if style == "valve":
        return f"{L(3)}-{d(4)}-{L(2)}"
    prefix = {"sole": "OS", "refill": "RF", "lamp": "LC", "furn": "GL"}.get(style, "PN")
    return f"{prefix}-{d(4)}{L(1)}"


def _brands(p: _Product) -> tuple[str, ...]:
    return p.brands or p.family.brands


def _title(p: _Product, rng: random.Random, brand: str, model: str) -> str:
    style = rng.random()
    if p.part_style:  # a part is often named by its number alone
        if style < 0.35:
            return model if rng.random() < 0.8 else f"P/N {model}"
        if style < 0.55:
            return f"{rng.choice(p.names_en)}; {model}"
        if style < 0.75:
            return f"{rng.choice(p.names_ko)}({brand} {model})"
        if style < 0.9:
            return f"{rng.choice(p.names_ko)} {rng.choice(p.names_en)} {model}"
        return f"{brand} {model}"
    if style < 0.4:  # like the portal's "English class; BRAND MODEL" titles
        return f"{rng.choice(p.names_en)}; {brand} {model}"
    if style < 0.75:
        return f"{rng.choice(p.names_ko)}({brand} {model})"
    if style < 0.9:
        return f"{rng.choice(p.names_ko)} {rng.choice(p.names_en)} {model}"
    return f"{brand} {model}"  # a model number is all the name says


def _description(p: _Product, rng: random.Random, brand: str, model: str) -> str:
    name = rng.choice(p.names_ko)
    spec, c_values = (p.spec, p.c_values) if p.spec else (p.family.spec, p.family.c_values)
    spec = spec.format(a=rng.randint(1, 9), b=rng.randint(0, 9), c=rng.choice(c_values))
    number = "부품번호" if p.part_style else "모델명"
    parts = [
        (
            f"ㅇ 본 물품은 {brand}사의 {name}({number}: {model})으로, "
            f"{rng.choice(p.family.uses)}에 사용되는 것임"
        ),
        f"- 재질: {rng.choice(p.materials)}",
        f"- 규격: {spec}",
    ]
    extras = list(p.family.extra)
    rng.shuffle(extras)
    parts += [f"- {s}" for s in extras[: rng.randint(0, len(extras))]]
    if rng.random() < 0.5:
        parts.append("※ 품목분류는 수출입신고 당시의 물품상태에 따라 변경될 수 있음")
    # Real descriptions join sub-items with line breaks or with double spaces.
    sep = "\n" if rng.random() < 0.5 else "  "
    return sep.join(parts)


def _reason(heading_text: str, rng: random.Random, hs: str) -> str:
    heading = hs[:4]
    return (
        f"ㅇ 관세율표 제{heading}호에는 “{heading_text}”을(를) 분류하고 있음"
        + (
            "  - 같은 호 해설서에서 이 호에 분류되는 물품의 범위를 설명하고 있음"
            if rng.random() < 0.6
            else ""
        )
        + f"  ㅇ 따라서, 본 물품은 관세율표의 해석에 관한 통칙 제1호 및 제6호에 따라 제{hs}호에 분류함"
    )


def _goods(p: _Product, rng: random.Random) -> tuple[str, str, list[bytes]]:
    """Title, description and photos of one good of ``p``."""
    brand = rng.choice(_brands(p))
    model = _part_no(p.part_style, rng) if p.part_style else _model_no(rng)
    title = _title(p, rng, brand, model)
    description = _description(p, rng, brand, model)
    n_images = 0
    if rng.random() < 0.75:
        n_images = 1 if rng.random() < 0.6 else 2
    return title, description, [draw_product(p.image_kind, rng) for _ in range(n_images)]


def _siblings(p: _Product) -> list[_Product]:
    return [q for q in PRODUCTS if q.family is p.family and q is not p]


def _working_day(start: dt.date, days: int, rng: random.Random) -> dt.date:
    date = start + dt.timedelta(days=rng.randrange(days))
    if date.weekday() >= 5:  # decisions are issued on working days
        date -= dt.timedelta(days=date.weekday() - 4)
    return date


def demo_corpus(
    n_cases: int = 300,
    seed: int = 0,
    years: Sequence[int] = (2024,),
    older_years: Sequence[int] = (),
) -> Corpus:
    """A deterministic demo corpus: same arguments -> byte-identical cases and images.

    About 14% of the cases are the long tail (one or two rulings per code), 3% of the others
    are decided under a sibling's code, 2-3 (from 50 cases up) are multi-code sets. Decision
    dates spread over the working days from 2 January of ``min(years)`` to 30 December of
    ``max(years)``; with ``older_years``, 12% of the cases are rulings of those years, most of
    them under the older edition's codes (:data:`OLD_CODES`; :func:`older_tariff_rows` and
    :func:`correlation_rows` describe what became of them).
    """
    if n_cases < 1:
        raise ValueError(f"n_cases must be >= 1, got {n_cases}")
    if not years:
        raise ValueError("years must name at least one year")
    rng = random.Random(seed)
    # 2-3 multi-code cases in a corpus of realistic size; none in tiny ones.
    n_multi = 0 if n_cases < 50 else (2 if n_cases < 300 else 3)
    n_tail = min(2 * len(TAIL_PRODUCTS), round(n_cases * TAIL_SHARE))
    n_old = round(n_cases * OLD_SHARE) if older_years else 0
    slots = list(range(n_cases))
    rng.shuffle(slots)
    multi_at = set(slots[:n_multi])
    tail_at = set(slots[n_multi : n_multi + n_tail])
    old_at = set(slots[n_multi + n_tail : n_multi + n_tail + n_old])
    tail_order = rng.sample(TAIL_PRODUCTS, len(TAIL_PRODUCTS))  # each tail code <= 2 cases
    weights = [p.weight for p in PRODUCTS]
    tshirt = _MAIN_BY_HS["6109.10-1000"]
    rows: list[dict] = []
    used_refs: set[str] = set()
    start = dt.date(min(years), 1, 2)
    days = (dt.date(max(years), 12, 30) - start).days
    if older_years:
        old_start = dt.date(min(older_years), 1, 2)
        old_days = (dt.date(max(older_years), 12, 30) - old_start).days
    n_tail_done = 0
    for i in range(n_cases):
        old: _OldCode | None = None
        if i in multi_at:
            p = tshirt
        elif i in tail_at:
            p = tail_order[n_tail_done % len(tail_order)]
            n_tail_done += 1
        elif i in old_at and rng.random() < 0.75:
            old = OLD_CODES[rng.randrange(len(OLD_CODES))]
            p = _MAIN_BY_HS[rng.choice(old.goods)]
        elif i in old_at:  # an old ruling under a code that has not changed since
            p = rng.choices(_UNCHANGED, [q.weight for q in _UNCHANGED])[0]
        else:
            p = rng.choices(PRODUCTS, weights)[0]
        title, description, images = _goods(p, rng)
        hs, heading_text = p.hs, p.heading_text
        if old is not None:  # decided under the code of its day
            hs, heading_text = old.hs, old.name_ko
        elif p.family is not _MISC and i not in multi_at and rng.random() < NOISE_SHARE:
            sibling = rng.choice(_siblings(p))  # label noise: a sibling's code
            hs, heading_text = sibling.hs, sibling.heading_text
        reason = _reason(heading_text, rng, hs)
        if i in multi_at:
            brand, model = rng.choice(_brands(p)), _model_no(rng)
            hs = _MULTI_CODE
            title = f"티셔츠 세트(면 및 폴리에스테르); {brand} {model}"
            description = (
                "ㅇ 면 100% 메리야스 편물제 반소매 티셔츠 1점과 폴리에스테르 100% 메리야스 편물제 "
                "반소매 티셔츠 1점을 함께 소매포장한 것\n- 각각 개별 물품으로 판매될 수 있는 것으로 "
                "소매용 세트를 구성하지 않음\n" + description
            )
            reason += ", 폴리에스테르 티셔츠는 제6109.90-3010호에 각각 분류함"
        roll = rng.random()
        series = "ordinary" if roll < 0.84 else ("committee" if roll < 0.93 else "council")
        while True:  # unique reference numbers within the demo
            ref = f"품목분류{rng.randint(1, 4)}과-{rng.randint(100, 9999)}"
            if ref not in used_refs:
                used_refs.add(ref)
                break
        if i in old_at:
            date = _working_day(old_start, old_days, rng)
        else:
            date = _working_day(start, days, rng)
        rows.append(
            {
                "series": series,
                "reference_no": ref,
                "decision_date": date,
                "office": rng.choice(_OFFICES),
                "hs_code": hs,
                "title": title,
                "description": description,
                "reason": reason,
                "images": images,
            }
        )
    rows.sort(key=lambda r: (r["decision_date"], r["reference_no"]))
    _assign_rrdc(rows, start=2001)
    name = f"demo:{n_cases}:{seed}:{min(years)}-{max(years)}"
    if older_years:
        name += f"+{min(older_years)}-{max(older_years)}"
    return Corpus([EmulatorCase(**row) for row in rows], name=name)


# ---------------------------------------------------------------------------- demo requests


@dataclass(frozen=True)
class DemoRequest:
    """A classification request of the demo backlog, with what its goods really are."""

    title: str
    description: str | None
    image: bytes | None
    hs_code: str  # the goods' code (portal spelling): never shown to the model
    kind: str  # familiar | part_number | unfamiliar


REQUEST_KINDS = ("familiar", "part_number", "unfamiliar")


def _request_kind(i: int) -> str:
    """Two in ten requests are goods the corpus has no code of, one in ten a bare part number."""
    slot = i % 10
    return "unfamiliar" if slot in (3, 8) else ("part_number" if slot == 5 else "familiar")


def demo_request_goods(n: int, seed: int) -> list[DemoRequest]:
    """``n`` requests generated like the corpus (another seed: unseen titles), mixed: goods of
    the corpus' codes, bare part numbers of its parts (half without a description), and goods
    of codes the corpus does not have (:data:`UNFAMILIAR_PRODUCTS`)."""
    rng = random.Random(seed)
    parts = [p for p in PRODUCTS if p.part_style]
    weights = [p.weight for p in PRODUCTS]
    out = []
    for i in range(n):
        kind = _request_kind(i)
        if kind == "unfamiliar":
            p = UNFAMILIAR_PRODUCTS[rng.randrange(len(UNFAMILIAR_PRODUCTS))]
        elif kind == "part_number":
            p = parts[rng.randrange(len(parts))]
        else:
            p = rng.choices(PRODUCTS, weights)[0]
        title, description, images = _goods(p, rng)
        if kind == "part_number":
            title = _part_no(p.part_style or "", rng)
            if rng.random() < 0.5:
                description = f"ㅇ {rng.choice(p.names_ko)}(부품번호 {title})"
            else:
                description = None
        out.append(DemoRequest(title, description, images[0] if images else None, p.hs, kind))
    return out


# ---------------------------------------------------------------------------- demo tariff


def _row(hs: str, name_ko: str, name_en: str) -> dict[str, str]:
    return {"hs10": hs.replace(".", "").replace("-", ""), "name_ko": name_ko, "name_en": name_en}


def current_tariff_rows() -> list[dict[str, str]]:
    """The demo's current edition (:data:`DEMO_CURRENT_EDITION`): every code of the corpus'
    goods, of the long tail and of the unfamiliar goods, with its Korean and English name."""
    return [
        _row(p.hs, p.heading_text, p.name_en)
        for p in (*PRODUCTS, *TAIL_PRODUCTS, *UNFAMILIAR_PRODUCTS)
    ]


def older_tariff_rows() -> list[dict[str, str]]:
    """The older edition (:data:`DEMO_OLDER_EDITION`, HSK 2017): the old codes of
    :data:`OLD_CODES` instead of what replaced them, without HS2022's new subheadings; the
    other codes as today."""
    replaced = {hs for old in OLD_CODES for hs in old.goods}
    new6 = {code for targets in HS2022_CHANGES.values() for code in targets}
    rows = [
        row
        for p, row in zip(
            (*PRODUCTS, *TAIL_PRODUCTS, *UNFAMILIAR_PRODUCTS), current_tariff_rows(), strict=True
        )
        if p.hs not in replaced and row["hs10"][:6] not in new6
    ]
    return rows + [_row(old.hs, old.name_ko, old.name_en) for old in OLD_CODES]


def correlation_rows() -> list[dict[str, str]]:
    """Six-digit correlation rows HS2017 -> HS2022 for the older edition's subheadings, in the
    layout of ``hs_correlations/hs2022_correlations.csv`` (``hs2022``, ``old_version``,
    ``old_hs6``, ``relationship``): one row per new subheading of a deleted one, 1:1 rows for
    the subheadings that stayed."""
    rows = []
    for old6 in sorted({row["hs10"][:6] for row in older_tariff_rows()}):
        targets = HS2022_CHANGES.get(old6, (old6,))
        relationship = "1:1" if len(targets) == 1 else "1:n"
        rows += [
            {
                "hs2022": new6,
                "old_version": _OLDER_HS,
                "old_hs6": old6,
                "relationship": relationship,
            }
            for new6 in targets
        ]
    return rows
