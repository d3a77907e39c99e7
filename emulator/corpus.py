"""What the emulator serves: classification cases with their images.

Two sources: ``demo_corpus`` generates a deterministic, realistic-looking corpus
over ten real HSK codes (with drawn product images); ``kcs_corpus`` loads the
real 2024 cases of the kcs_hs_chatbot snapshot (no images).
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


@dataclass(frozen=True)
class _Product:
    hs: str  # portal spelling
    image_kind: str
    heading_text: str  # what the heading covers, as the tariff says it (for the reason)
    names_ko: tuple[str, ...]
    names_en: tuple[str, ...]
    brands: tuple[str, ...]
    materials: tuple[str, ...]
    uses: tuple[str, ...]
    spec: str  # format string: {a} {b} single digits, {c} one of c_values
    c_values: tuple[object, ...]
    extra: tuple[str, ...]  # optional sentences that lengthen descriptions


PRODUCTS: tuple[_Product, ...] = (
    _Product(
        "9608.10-0000",
        "pen",
        "볼펜, 팁(tip)이 펠트로 된 것과 그 밖의 포러스팁(porous-tip)으로 된 펜과 마커",
        ("볼펜", "유성 볼펜", "젤 잉크 볼펜", "노크식 볼펜"),
        ("Ball point pen", "Gel ink ballpoint pen", "Retractable ballpoint pen"),
        ("MONAMI", "ZEBRA", "PILOT", "BIC", "STAEDTLER", "PENTEL"),
        ("플라스틱(PP) 몸체", "알루미늄 몸체", "황동 몸체에 크롬 도금"),
        ("필기용", "사무용 필기구", "학생용 필기구"),
        "볼 지름 0.{a}mm, 전체 길이 1{b}{a}mm",
        ("",),
        (
            "잉크 카트리지는 교체가 가능하며 클립이 부착되어 있음",
            "12자루를 종이상자에 소매포장한 상태로 수입됨",
            "고무 그립이 부착되어 장시간 필기 시 손의 피로를 줄여줌",
        ),
    ),
    _Product(
        "6109.10-1000",
        "tshirt",
        "티셔츠ㆍ싱글리트(singlet)와 그 밖의 조끼(메리야스 편물이나 뜨개질 편물로 한정한다)",
        ("반소매 티셔츠", "라운드넥 티셔츠", "면 티셔츠", "오버핏 티셔츠"),
        ("T-shirt", "Cotton crew neck T-shirt", "Short sleeve tee"),
        ("UNIQLO", "SPAO", "HANES", "GILDAN", "TOPTEN"),
        ("면 100% 메리야스 편물", "면 95% 폴리우레탄 5% 메리야스 편물", "유기농 면 100% 싱글저지"),
        ("일상복", "남녀공용 상의", "아동용 상의"),
        "중량 1{a}{b}g/㎡, 사이즈 {c}",
        ("S", "M", "L", "XL", "95", "100", "105"),
        (
            "목둘레에 립 조직의 밴드가 봉제되어 있고 앞면에 로고가 프린트되어 있음",
            "소매 끝단과 밑단은 접어박기 처리되어 있음",
            "개별 폴리백에 포장되어 수입됨",
        ),
    ),
    _Product(
        "6404.11-0000",
        "shoe",
        "신발류[바깥 바닥을 고무ㆍ플라스틱ㆍ가죽ㆍ콤퍼지션 레더(composition leather)로 만들고, 갑피(甲皮)를 방직용 섬유재료로 만든 것으로 한정한다]",
        ("러닝화", "운동화", "트레이닝화", "농구화"),
        ("Running shoes", "Sports footwear", "Training shoes"),
        ("NIKE", "ADIDAS", "ASICS", "NEW BALANCE", "FILA"),
        (
            "갑피는 폴리에스테르 메시 직물, 바깥 바닥은 고무",
            "갑피는 니트 직물, 바깥 바닥은 EVA 및 고무",
            "갑피는 나일론 직물, 바깥 바닥은 합성고무",
        ),
        ("달리기 등 운동용", "스포츠 훈련용", "실내 코트 운동용"),
        "사이즈 2{a}{b}mm, 중량 약 {c}g",
        tuple(range(250, 460, 10)),
        (
            "끈으로 조여 착용하는 구조이며 깔창은 탈착이 가능함",
            "바깥 바닥에 미끄럼 방지 패턴이 형성되어 있음",
            "뒤꿈치 부분에 충격흡수용 쿠셔닝이 내장되어 있음",
        ),
    ),
    _Product(
        "8471.30-0000",
        "laptop",
        "자동자료처리기계와 그 단위기기",
        ("노트북 컴퓨터", "휴대용 컴퓨터", "2-in-1 노트북"),
        ("Notebook computer", "Laptop PC", "Portable computer"),
        ("SAMSUNG", "LG", "LENOVO", "DELL", "HP", "ASUS"),
        ("알루미늄 하우징", "마그네슘 합금 하우징", "플라스틱 하우징"),
        ("사무용 자료처리", "개인용 컴퓨팅", "교육용"),
        "화면 1{a}.{b}인치, 중량 {c}g",
        tuple(range(980, 2400, 10)),
        (
            "중앙처리장치, 키보드, 디스플레이를 일체로 갖추고 있으며 배터리로 작동함",
            "무선랜 및 블루투스 통신 모듈이 내장되어 있음",
            "운영체제가 설치된 상태로 수입되며 전원 어댑터가 동봉됨",
        ),
    ),
    _Product(
        "8517.13-0000",
        "phone",
        "전화기(셀룰러 통신망용이나 그 밖의 무선통신망용의 스마트폰과 그 밖의 전화기를 포함한다)",
        ("스마트폰", "휴대전화기", "5G 스마트폰"),
        ("Smartphone", "Mobile phone", "5G smartphone"),
        ("SAMSUNG", "APPLE", "XIAOMI", "GOOGLE", "MOTOROLA"),
        ("강화유리 전면과 알루미늄 프레임", "플라스틱 후면 커버", "티타늄 프레임"),
        ("이동통신 음성통화 및 데이터 통신", "개인용 통신기기"),
        "화면 6.{a}인치, 저장용량 {c}GB",
        (128, 256, 512, 1024),
        (
            "셀룰러 통신망에 접속하여 음성 및 영상 통화가 가능하며 카메라 모듈을 갖추고 있음",
            "충전 케이블이 함께 포장되어 있음",
            "운영체제에 따라 다양한 응용프로그램을 설치하여 사용할 수 있음",
        ),
    ),
    _Product(
        "0202.30-0000",
        "beef",
        "쇠고기(냉동한 것으로 한정한다)",
        ("냉동 쇠고기", "뼈 없는 냉동 우육", "냉동 소고기 부채살"),
        ("Frozen boneless beef", "Frozen beef chuck", "Frozen beef brisket"),
        ("IBP", "JBS", "TEYS", "MINERVA", "CARGILL"),
        ("뼈를 제거한 소의 정육", "지방을 일부 제거한 소의 정육"),
        ("식육 가공 및 판매용", "음식점 조리용"),
        "포장단위 {a}{b}kg, 보관온도 영하 {c}℃ 이하",
        (18, 20, 25),
        (
            "진공 포장 후 급속 냉동한 것으로 양념 등 다른 물질은 첨가되지 않음",
            "판지 상자에 포장되어 냉동 컨테이너로 운송됨",
            "도축 후 부위별로 절단한 것임",
        ),
    ),
    _Product(
        "9503.00-3800",
        "toy",
        "세발자전거ㆍ스쿠터ㆍ페달 자동차와 이와 유사한 바퀴가 달린 완구, 인형과 그 밖의 완구",
        ("무선조종 자동차 완구", "RC카", "전동 완구 자동차"),
        ("RC car toy", "Remote control car", "Electric toy car"),
        ("HOT WHEELS", "SYMA", "TAMIYA", "MAISTO", "SILVERLIT"),
        ("ABS 플라스틱 차체", "PVC 플라스틱 및 고무 바퀴"),
        ("어린이 놀이용", "오락용 완구"),
        "축척 1:{a}{b}, 최고속도 {c}km/h",
        tuple(range(8, 36)),
        (
            "소형 직류 모터가 내장되어 있어 리모컨으로 전후진 및 방향 전환이 가능함",
            "충전식 배터리와 USB 충전 케이블이 포함되어 있음",
            "만 6세 이상 어린이용으로 표시되어 소매포장됨",
        ),
    ),
    _Product(
        "3304.10-1000",
        "lipstick",
        "미용이나 메이크업용 제품류와 기초화장용 제품류",
        ("립스틱", "매트 립스틱", "보습 립스틱"),
        ("Lipstick", "Matte lipstick", "Moisture lip color"),
        ("MAC", "ESTEE LAUDER", "ROM&ND", "CLIO", "3CE"),
        ("왁스, 오일, 색소로 구성된 고형", "피마자유, 밀랍, 산화철 색소로 구성된 고형"),
        ("입술 화장용", "입술 색조 화장"),
        "내용량 3.{a}g, 색상 번호 {c}",
        tuple(range(101, 520)),
        (
            "돌려서 올리는 방식의 용기에 충전되어 소매포장됨",
            "보습 성분으로 시어버터가 함유되어 있음",
            "화장품법에 따른 전성분이 표시되어 있음",
        ),
    ),
    _Product(
        "4202.92-2000",
        "backpack",
        "트렁크ㆍ슈트 케이스ㆍ여행가방ㆍ배낭ㆍ핸드백과 이와 유사한 용기",
        ("배낭", "백팩", "등산용 배낭", "노트북 백팩"),
        ("Backpack", "Hiking backpack", "Laptop backpack"),
        ("THE NORTH FACE", "SAMSONITE", "JANSPORT", "EASTPAK", "OSPREY"),
        ("외부 표면은 폴리에스테르 직물", "외부 표면은 나일론 직물(PU 코팅)"),
        ("휴대품 운반용", "등산 및 여행용", "통학용"),
        "용량 {a}{b}L, 크기 {c}x300x150mm",
        tuple(range(250, 500, 10)),
        (
            "양쪽 어깨끈과 지퍼식 주머니가 여러 개 부착되어 있음",
            "내부에 노트북 수납용 완충 칸이 있음",
            "등판에 통기성 메시 패드가 부착되어 있음",
        ),
    ),
    _Product(
        "9405.42-0000",
        "lamp",
        "조명기구(따로 분류되지 않은 것으로 한정한다), 조명용 사인ㆍ네임플레이트",
        ("LED 스탠드", "LED 조명등", "LED 무드등"),
        ("LED desk lamp", "LED lighting fixture", "LED mood light"),
        ("PHILIPS", "OSRAM", "IKEA", "XIAOMI", "LUMENA"),
        ("알루미늄 및 ABS 플라스틱 본체", "강철 및 폴리카보네이트 본체"),
        ("실내 조명용", "책상 조명용", "실내 장식 조명용"),
        "소비전력 {a}{b}W, 색온도 {c}00K",
        tuple(range(27, 66)),
        (
            "발광다이오드(LED) 광원에 전용되도록 설계되어 있으며 밝기 조절 기능이 있음",
            "전원 어댑터를 통해 교류 전원에 연결하여 사용함",
            "광원 모듈은 본체에 고정되어 교체할 수 없음",
        ),
    ),
)

# Sets sold together that end with one code per article (a multi-code case).
_MULTI_CODE = "① 6109.10-1000 ② 6109.90-3010"
_OFFICES = ("관세평가분류원",) * 9 + ("서울본부세관",)
_MODEL_CHARS = "ABCDEFGHJKLMNPRSTUVWXZ"


def _model_no(rng: random.Random) -> str:
    letters = "".join(rng.choice(_MODEL_CHARS) for _ in range(rng.randint(1, 3)))
    return (
        f"{letters}-{rng.randint(10, 9999)}"
        if rng.random() < 0.5
        else f"{letters}{rng.randint(100, 999)}"
    )


def _title(p: _Product, rng: random.Random, brand: str, model: str) -> str:
    style = rng.random()
    if style < 0.4:  # like the portal's "English class; BRAND MODEL" titles
        return f"{rng.choice(p.names_en)}; {brand} {model}"
    if style < 0.75:
        return f"{rng.choice(p.names_ko)}({brand} {model})"
    if style < 0.9:
        return f"{rng.choice(p.names_ko)} {rng.choice(p.names_en)} {model}"
    return f"{brand} {model}"


def _description(p: _Product, rng: random.Random, brand: str, model: str) -> str:
    name = rng.choice(p.names_ko)
    spec = p.spec.format(a=rng.randint(1, 9), b=rng.randint(0, 9), c=rng.choice(p.c_values))
    parts = [
        f"ㅇ 본 물품은 {brand}사의 {name}(모델명: {model})으로, {rng.choice(p.uses)}에 사용되는 것임",
        f"- 재질: {rng.choice(p.materials)}",
        f"- 규격: {spec}",
    ]
    extras = list(p.extra)
    rng.shuffle(extras)
    parts += [f"- {s}" for s in extras[: rng.randint(0, len(extras))]]
    if rng.random() < 0.5:
        parts.append("※ 품목분류는 수출입신고 당시의 물품상태에 따라 변경될 수 있음")
    # Real descriptions join sub-items with line breaks or with double spaces.
    sep = "\n" if rng.random() < 0.5 else "  "
    return sep.join(parts)


def _reason(p: _Product, rng: random.Random, hs: str) -> str:
    heading = hs[:4]
    return (
        f"ㅇ 관세율표 제{heading}호에는 “{p.heading_text}”을(를) 분류하고 있음"
        + (
            "  - 같은 호 해설서에서 이 호에 분류되는 물품의 범위를 설명하고 있음"
            if rng.random() < 0.6
            else ""
        )
        + f"  ㅇ 따라서, 본 물품은 관세율표의 해석에 관한 통칙 제1호 및 제6호에 따라 제{hs}호에 분류함"
    )


def demo_corpus(n_cases: int = 300, seed: int = 0, years: Sequence[int] = (2024,)) -> Corpus:
    """A deterministic demo corpus: same arguments -> byte-identical cases and images.

    Decision dates spread over the working days from 2 January of ``min(years)``
    to 30 December of ``max(years)``.
    """
    if n_cases < 1:
        raise ValueError(f"n_cases must be >= 1, got {n_cases}")
    if not years:
        raise ValueError("years must name at least one year")
    rng = random.Random(seed)
    # 2-3 multi-code cases in a corpus of realistic size; none in tiny ones.
    n_multi = 0 if n_cases < 50 else (2 if n_cases < 300 else 3)
    multi_at = set(rng.sample(range(n_cases), n_multi))
    rows: list[dict] = []
    used_refs: set[str] = set()
    start = dt.date(min(years), 1, 2)
    days = (dt.date(max(years), 12, 30) - start).days
    for i in range(n_cases):
        p = PRODUCTS[rng.randrange(len(PRODUCTS))] if i not in multi_at else PRODUCTS[1]
        brand, model = rng.choice(p.brands), _model_no(rng)
        hs = p.hs
        title = _title(p, rng, brand, model)
        description = _description(p, rng, brand, model)
        if i in multi_at:
            hs = _MULTI_CODE
            title = f"티셔츠 세트(면 및 폴리에스테르); {brand} {model}"
            description = (
                "ㅇ 면 100% 메리야스 편물제 반소매 티셔츠 1점과 폴리에스테르 100% 메리야스 편물제 "
                "반소매 티셔츠 1점을 함께 소매포장한 것\n- 각각 개별 물품으로 판매될 수 있는 것으로 "
                "소매용 세트를 구성하지 않음\n" + description
            )
        reason = _reason(p, rng, hs if i not in multi_at else "6109.10-1000")
        if i in multi_at:
            reason += ", 폴리에스테르 티셔츠는 제6109.90-3010호에 각각 분류함"
        roll = rng.random()
        series = "ordinary" if roll < 0.84 else ("committee" if roll < 0.93 else "council")
        while True:  # unique reference numbers within the demo
            ref = f"품목분류{rng.randint(1, 4)}과-{rng.randint(100, 9999)}"
            if ref not in used_refs:
                used_refs.add(ref)
                break
        date = start + dt.timedelta(days=rng.randrange(days))
        if date.weekday() >= 5:  # decisions are issued on working days
            date -= dt.timedelta(days=date.weekday() - 4)
        n_images = 0
        if rng.random() < 0.75:
            n_images = 1 if rng.random() < 0.6 else 2
        images = [draw_product(p.image_kind, rng) for _ in range(n_images)]
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
    return Corpus([EmulatorCase(**row) for row in rows], name=name)
