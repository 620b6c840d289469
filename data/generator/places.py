"""Who the foreign schools are: countries, real cities, languages and naming conventions.

The tables are facts rounded for a simulation: city coordinates to about 1 km, region codes from
ISO 3166-2 (checked against pycountry by the tests), the languages each country's schools teach
in and can run an exchange in, and the way schools there are named (SD Negeri 3 Surabaya,
Trường Tiểu học Nguyễn Du, SJK (C) Chung Hwa). A stem written ``local|English`` gives the name in
the local script and its romanised form.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from data.taxonomies import Level, Ownership

P, J, S, V = Level.PRIMARY, Level.JUNIOR_HIGH, Level.SENIOR_HIGH, Level.VOCATIONAL_HIGH
PUBLIC, PRIVATE = Ownership.PUBLIC, Ownership.PRIVATE
REGIONAL = "*"  # stands for the region's own language (Tamil in Tamil Nadu, Sinhala or Tamil in Sri Lanka)


@dataclass(frozen=True)
class City:
    name: str
    region: str  # ISO 3166-2
    lat: float
    lon: float
    weight: float


@dataclass(frozen=True)
class SchoolKind:
    """One kind of school a country has, e.g. Malaysia's Chinese-medium primary schools."""

    weight: float
    levels: tuple[Level, ...]
    local_name: str | None  # format string over {stem}, {city}, {n}
    english_name: str | None
    instruction: tuple[str, ...]
    stems: tuple[str, ...] = ()
    ownership: Ownership = PUBLIC
    exchange_extra: tuple[str, ...] = ()  # languages this kind always offers for exchange


@dataclass(frozen=True)
class CountryProfile:
    code: str
    weight: float  # share of the foreign schools
    cities: tuple[City, ...]
    kinds: tuple[SchoolKind, ...]
    exchange_options: tuple[tuple[str, float], ...]  # (language, probability a school offers it)
    size_shift: float = 0.0  # added to the log of enrolment: bigger schools in populous countries
    sdg_boost: dict[int, float] = field(default_factory=dict)
    visit_rate: float = 0.3
    hosting_rate: float = 0.4
    regional_languages: dict[str, str] = field(default_factory=dict)
    default_regional_language: str = ""


def _cities(*rows: tuple[str, str, float, float, float]) -> tuple[City, ...]:
    return tuple(City(*row) for row in rows)


_VN_STEMS = (
    "Nguyễn Du", "Lê Quý Đôn", "Trần Phú", "Chu Văn An", "Lê Lợi", "Nguyễn Trãi", "Quang Trung", "Kim Đồng",
    "Võ Thị Sáu", "Nguyễn Bỉnh Khiêm", "Phan Chu Trinh", "Lý Thường Kiệt", "Trưng Vương", "Hoàng Hoa Thám",
    "Nguyễn Văn Trỗi", "Điện Biên", "Ngô Quyền", "Trần Quốc Toản",
)
_MY_SJKC = (
    "Chung Hwa", "Kuen Cheng", "Puay Chai", "Kung Yik", "Pei Hwa", "Yuk Chai", "Chi Man", "Hwa Lian", "Foon Yew",
    "Chong Hwa", "Keat Hwa", "Min Te", "Yu Hua", "Lai Meng", "Sin Min", "Pin Hwa", "Yuk Choy", "Jalan Davidson",
)
_MY_MALAY = (
    "Taman Melati", "Bukit Damansara", "Seri Bintang", "Kampung Baru", "Taman Tun Dr Ismail", "Bandar Baru Bangi",
    "Sultan Ismail", "Seksyen 7", "Sungai Buloh", "Bukit Jalil", "Tanjung Bungah", "Taman Desa", "Jalan Kebun",
    "Batu Pahat", "Seri Kembangan", "Padang Tembak",
)
_JP_STEMS = (
    "桜丘|Sakuragaoka", "青葉|Aoba", "緑ヶ丘|Midorigaoka", "若葉|Wakaba", "東|Higashi", "西|Nishi", "南|Minami",
    "北|Kita", "中央|Chuo", "旭|Asahi", "富士見|Fujimi", "本町|Honcho", "山手|Yamate", "港|Minato", "松原|Matsubara",
)
_KR_STEMS = (
    "한빛|Hanbit", "새솔|Saesol", "푸른|Pureun", "동산|Dongsan", "중앙|Jungang", "대현|Daehyeon", "신림|Sillim",
    "해송|Haesong", "은행|Eunhaeng", "매화|Maehwa", "소나무|Sonamu", "하늘|Haneul",
)
_EN_STEMS = (
    "Riverside", "Hillcrest", "Greenwood", "Lakeside", "Mount Pleasant", "Bayview", "Parkside", "St Mary's",
    "Kingsgrove", "Westfield", "Oakleigh", "Burwood", "Epping", "Chatswood", "Fairview", "Ashfield",
)
_US_STEMS = (
    "Lincoln", "Washington", "Jefferson", "Roosevelt", "Franklin", "Lakeview", "Maple Grove", "Oak Ridge",
    "Cedar Hills", "Pacific", "Sunset", "Highland",
)

COUNTRIES: tuple[CountryProfile, ...] = (
    CountryProfile(
        "MY", 0.17,
        _cities(
            ("Kuala Lumpur", "MY-14", 3.139, 101.687, 9), ("Petaling Jaya", "MY-10", 3.107, 101.607, 8),
            ("Shah Alam", "MY-10", 3.073, 101.518, 4), ("George Town", "MY-07", 5.414, 100.329, 5),
            ("Ipoh", "MY-08", 4.597, 101.090, 5), ("Johor Bahru", "MY-01", 1.492, 103.741, 7),
            ("Kuching", "MY-13", 1.553, 110.359, 5), ("Sibu", "MY-13", 2.298, 111.830, 3),
            ("Kota Kinabalu", "MY-12", 5.980, 116.073, 4), ("Sandakan", "MY-12", 5.840, 118.117, 2),
            ("Melaka", "MY-04", 2.189, 102.250, 3), ("Seremban", "MY-05", 2.725, 101.938, 3),
            ("Kuantan", "MY-06", 3.807, 103.326, 2), ("Alor Setar", "MY-02", 6.121, 100.367, 2),
            ("Kota Bharu", "MY-03", 6.125, 102.238, 1), ("Kuala Terengganu", "MY-11", 5.330, 103.137, 1),
            ("Kangar", "MY-09", 6.441, 100.198, 0.5), ("Labuan", "MY-15", 5.280, 115.241, 0.3),
            ("Putrajaya", "MY-16", 2.926, 101.696, 0.5),
        ),
        (
            SchoolKind(0.38, (P,), "SJK (C) {stem}", "{stem} Chinese Primary School", ("zh", "ms"), _MY_SJKC),
            SchoolKind(0.30, (P,), "SK {stem}", "{stem} National Primary School", ("ms",), _MY_MALAY),
            SchoolKind(0.04, (P,), "SJK (T) {stem}", "{stem} Tamil Primary School", ("ta", "ms"), _MY_MALAY),
            SchoolKind(0.22, (J, S), "SMK {stem}", "{stem} National Secondary School", ("ms",), _MY_MALAY),
            SchoolKind(0.06, (J, S), None, "{stem} Independent High School", ("zh",), _MY_SJKC, PRIVATE, ("ms",)),
        ),
        (("en", 0.85), ("zh", 0.08)),
        sdg_boost={15: 1.5, 12: 1.5}, visit_rate=0.3, hosting_rate=0.45,
    ),
    CountryProfile(
        "VN", 0.09,
        _cities(
            ("Hanoi", "VN-HN", 21.028, 105.854, 8), ("Ho Chi Minh City", "VN-SG", 10.823, 106.630, 10),
            ("Da Nang", "VN-DN", 16.054, 108.202, 3), ("Hai Phong", "VN-HP", 20.845, 106.688, 3),
            ("Can Tho", "VN-CT", 10.045, 105.747, 2), ("Hue", "VN-26", 16.463, 107.590, 2),
            ("Nha Trang", "VN-34", 12.238, 109.197, 1.5), ("Vinh", "VN-22", 18.679, 105.681, 2),
            ("Bien Hoa", "VN-39", 10.957, 106.843, 2), ("Thu Dau Mot", "VN-57", 10.980, 106.652, 2),
        ),
        (
            SchoolKind(0.55, (P,), "Trường Tiểu học {stem}", "{stem} Primary School", ("vi",), _VN_STEMS),
            SchoolKind(0.25, (J,), "Trường THCS {stem}", "{stem} Lower Secondary School", ("vi",), _VN_STEMS),
            SchoolKind(0.15, (S,), "Trường THPT {stem}", "{stem} High School", ("vi",), _VN_STEMS),
            SchoolKind(0.05, (V,), "Trường Trung cấp Nghề {city}", "{city} Vocational School", ("vi",)),
        ),
        (("en", 0.75), ("zh", 0.05)),
        size_shift=0.3, sdg_boost={13: 1.5, 12: 1.5, 6: 1.3}, visit_rate=0.2, hosting_rate=0.4,
    ),
    CountryProfile(
        "TH", 0.09,
        _cities(
            ("Bangkok", "TH-10", 13.756, 100.502, 10), ("Chiang Mai", "TH-50", 18.788, 98.985, 3),
            ("Khon Kaen", "TH-40", 16.441, 102.836, 2), ("Nakhon Ratchasima", "TH-30", 14.980, 102.098, 2),
            ("Hat Yai", "TH-90", 7.007, 100.474, 2), ("Phuket", "TH-83", 7.880, 98.392, 1),
            ("Chiang Rai", "TH-57", 19.910, 99.840, 1.5), ("Udon Thani", "TH-41", 17.415, 102.787, 1.5),
            ("Nonthaburi", "TH-12", 13.862, 100.514, 2), ("Chonburi", "TH-20", 13.361, 100.985, 2),
            ("Surat Thani", "TH-84", 9.139, 99.333, 1),
        ),
        (
            SchoolKind(0.50, (P,), None, "Ban {stem} School", ("th",),
                       ("Nong Bua", "Don Chan", "Huai Sai", "Khlong Toei", "Mae Rim", "Nong Khai", "Pak Chong",
                        "Bang Rak", "Sai Mun", "Na Kham", "Khok Sung", "Wang Thong")),
            SchoolKind(0.35, (J, S), None, "{stem} Wittaya School", ("th",),
                       ("Satri", "Yothin", "Saraburi", "Benchama", "Prachan", "Srinakhon", "Kanlaya", "Suksa")),
            SchoolKind(0.10, (V,), None, "{city} Technical College", ("th",)),
            SchoolKind(0.05, (P, J, S), None, "{stem} International School", ("en",),
                       ("Ruamrudee", "Prem", "Harrow", "St. Andrews"), PRIVATE, ("th",)),
        ),
        (("en", 0.7), ("zh", 0.2)),
        sdg_boost={12: 1.5, 2: 1.5, 14: 1.2}, visit_rate=0.2, hosting_rate=0.4,
    ),
    CountryProfile(
        "ID", 0.09,
        _cities(
            ("Jakarta", "ID-JK", -6.208, 106.846, 10), ("Surabaya", "ID-JI", -7.257, 112.752, 5),
            ("Bandung", "ID-JB", -6.917, 107.619, 4), ("Medan", "ID-SU", 3.595, 98.672, 4),
            ("Semarang", "ID-JT", -6.966, 110.417, 3), ("Yogyakarta", "ID-YO", -7.797, 110.370, 2),
            ("Makassar", "ID-SN", -5.148, 119.432, 2), ("Denpasar", "ID-BA", -8.650, 115.216, 2),
            ("Pontianak", "ID-KB", -0.027, 109.334, 1.5), ("Palembang", "ID-SS", -2.976, 104.775, 2),
            ("Balikpapan", "ID-KI", -1.238, 116.852, 1), ("Manado", "ID-SA", 1.474, 124.842, 1),
            ("Batam", "ID-KR", 1.045, 104.030, 1),
        ),
        (
            SchoolKind(0.45, (P,), "SD Negeri {n} {city}", "State Primary School {n} {city}", ("id",)),
            SchoolKind(0.20, (J,), "SMP Negeri {n} {city}", "State Junior High School {n} {city}", ("id",)),
            SchoolKind(0.15, (S,), "SMA Negeri {n} {city}", "State Senior High School {n} {city}", ("id",)),
            SchoolKind(0.10, (V,), "SMK Negeri {n} {city}", "State Vocational High School {n} {city}", ("id",)),
            SchoolKind(0.10, (P, J), "Sekolah {stem}", "{stem} School", ("id", "en"),
                       ("Tunas Harapan", "Bina Bangsa", "Pelita Harapan", "Cahaya Bangsa", "Santa Maria",
                        "Al-Azhar", "Budi Mulia", "Harapan Bangsa"), PRIVATE),
        ),
        (("en", 0.75), ("zh", 0.08)),
        size_shift=0.2, sdg_boost={14: 2.0, 13: 1.5, 15: 1.3}, visit_rate=0.2, hosting_rate=0.4,
    ),
    CountryProfile(
        "PH", 0.07,
        _cities(
            ("Manila", "PH-00", 14.599, 120.984, 6), ("Quezon City", "PH-00", 14.676, 121.044, 6),
            ("Cebu City", "PH-07", 10.316, 123.885, 3), ("Davao City", "PH-11", 7.190, 125.455, 3),
            ("Iloilo City", "PH-06", 10.720, 122.562, 2), ("Baguio", "PH-15", 16.402, 120.596, 1.5),
            ("Cagayan de Oro", "PH-10", 8.477, 124.646, 1.5), ("Zamboanga City", "PH-09", 6.921, 122.079, 1),
            ("Calamba", "PH-40", 14.211, 121.165, 2), ("San Fernando", "PH-03", 15.029, 120.693, 1.5),
        ),
        (
            SchoolKind(0.55, (P,), None, "{stem} Elementary School", ("fil", "en"),
                       ("Rizal", "Bonifacio", "Mabini", "San Isidro", "Del Pilar", "Quezon", "Magsaysay",
                        "Aguinaldo", "San Jose", "Libertad", "Burgos", "Lapu-Lapu")),
            SchoolKind(0.30, (J, S), None, "{stem} National High School", ("fil", "en"),
                       ("Rizal", "Bonifacio", "Mabini", "Quezon", "Ramon Magsaysay", "Tondo", "Pasig", "Marikina")),
            SchoolKind(0.10, (P, J, S), None, "{stem} Integrated School", ("fil", "en"),
                       ("San Roque", "Sta. Cruz", "Maharlika", "Sampaguita")),
            SchoolKind(0.05, (S,), None, "{city} Science High School", ("en", "fil")),
        ),
        (("en", 1.0), ("zh", 0.04)),
        size_shift=0.5, sdg_boost={14: 2.0, 13: 1.5, 11: 1.2}, visit_rate=0.2, hosting_rate=0.4,
    ),
    CountryProfile(
        "SG", 0.045,
        _cities(
            ("Bishan", "SG-01", 1.351, 103.848, 3), ("Hougang", "SG-02", 1.372, 103.893, 2),
            ("Woodlands", "SG-03", 1.436, 103.786, 2), ("Tampines", "SG-04", 1.353, 103.945, 2),
            ("Jurong West", "SG-05", 1.340, 103.705, 2),
        ),
        (
            SchoolKind(0.55, (P,), None, "{stem} Primary School", ("en",),
                       ("Nanyang", "Rosyth", "Tao Nan", "Ai Tong", "Henry Park", "Nan Hua", "Pei Hwa", "Red Swastika",
                        "Maris Stella", "Yishun", "Tampines", "Chongfu")),
            SchoolKind(0.35, (J, S), None, "{stem} Secondary School", ("en",),
                       ("Chung Cheng High", "Dunman", "Bukit Panjang", "Bedok South", "Yuhua", "Commonwealth")),
            SchoolKind(0.10, (S,), None, "{stem} Junior College", ("en",),
                       ("Hwa Chong", "Nanyang", "Temasek", "Victoria", "Eunoia")),
        ),
        (("zh", 0.7), ("ms", 0.1), ("ta", 0.08)),
        sdg_boost={11: 2.0, 9: 1.5, 12: 1.5}, visit_rate=0.45, hosting_rate=0.45,
    ),
    CountryProfile(
        "AU", 0.06,
        _cities(
            ("Sydney", "AU-NSW", -33.869, 151.209, 8), ("Melbourne", "AU-VIC", -37.814, 144.963, 8),
            ("Brisbane", "AU-QLD", -27.470, 153.026, 4), ("Perth", "AU-WA", -31.950, 115.860, 3),
            ("Adelaide", "AU-SA", -34.929, 138.601, 2), ("Hobart", "AU-TAS", -42.882, 147.327, 1),
            ("Canberra", "AU-ACT", -35.281, 149.130, 1), ("Darwin", "AU-NT", -12.463, 130.845, 0.5),
            ("Gold Coast", "AU-QLD", -28.017, 153.400, 1.5), ("Newcastle", "AU-NSW", -32.928, 151.776, 1),
        ),
        (
            SchoolKind(0.50, (P,), None, "{stem} Primary School", ("en",), _EN_STEMS),
            SchoolKind(0.30, (J, S), None, "{stem} High School", ("en",), _EN_STEMS),
            SchoolKind(0.10, (J, S), None, "{stem} Secondary College", ("en",), _EN_STEMS),
            SchoolKind(0.10, (P, J, S), None, "{stem} Grammar School", ("en",), _EN_STEMS, PRIVATE),
        ),
        (("zh", 0.25), ("ja", 0.15), ("id", 0.06)),
        sdg_boost={13: 1.5, 15: 1.5, 14: 1.5}, visit_rate=0.45, hosting_rate=0.45,
    ),
    CountryProfile(
        "IN", 0.05,
        _cities(
            ("New Delhi", "IN-DL", 28.614, 77.209, 6), ("Mumbai", "IN-MH", 19.076, 72.878, 5),
            ("Pune", "IN-MH", 18.520, 73.857, 2), ("Bengaluru", "IN-KA", 12.972, 77.595, 4),
            ("Chennai", "IN-TN", 13.083, 80.271, 4), ("Kolkata", "IN-WB", 22.573, 88.364, 3),
            ("Hyderabad", "IN-TS", 17.385, 78.487, 3), ("Ahmedabad", "IN-GJ", 23.023, 72.571, 2),
            ("Jaipur", "IN-RJ", 26.912, 75.787, 2), ("Lucknow", "IN-UP", 26.847, 80.946, 2),
            ("Kochi", "IN-KL", 9.931, 76.267, 1.5), ("Guwahati", "IN-AS", 26.144, 91.736, 1),
        ),
        (
            SchoolKind(0.20, (P, J, S), None, "Kendriya Vidyalaya {city}", ("hi", "en")),
            SchoolKind(0.35, (P, J), None, "{stem} Public School, {city}", ("en",),
                       ("Springdale", "Modern", "Bal Bharati", "Ryan", "Sarvodaya", "Vidya Niketan"), PRIVATE),
            SchoolKind(0.20, (J, S), None, "Government Senior Secondary School, {city}", (REGIONAL, "en")),
            SchoolKind(0.15, (P, J), None, "{stem} Convent School, {city}", ("en",),
                       ("St. Xavier's", "Sacred Heart", "Holy Cross", "Carmel", "Don Bosco"), PRIVATE),
            SchoolKind(0.10, (P,), None, "Government Primary School {stem}, {city}", (REGIONAL,),
                       ("No. 1", "No. 2", "Nehru Nagar", "Gandhi Nagar", "Shanti Nagar")),
        ),
        (("en", 0.9),),
        size_shift=0.5, sdg_boost={6: 1.5, 5: 1.5, 1: 1.5, 2: 1.5}, visit_rate=0.15, hosting_rate=0.35,
        regional_languages={"IN-TN": "ta", "IN-KA": "kn", "IN-KL": "ml", "IN-MH": "mr", "IN-WB": "bn",
                            "IN-TS": "te", "IN-GJ": "gu", "IN-AS": "as"},
        default_regional_language="hi",
    ),
    CountryProfile(
        "NZ", 0.025,
        _cities(
            ("Auckland", "NZ-AUK", -36.848, 174.763, 6), ("Wellington", "NZ-WGN", -41.287, 174.776, 2),
            ("Christchurch", "NZ-CAN", -43.532, 172.637, 2), ("Hamilton", "NZ-WKO", -37.787, 175.279, 1),
            ("Dunedin", "NZ-OTA", -45.879, 170.503, 1), ("Tauranga", "NZ-BOP", -37.687, 176.165, 1),
        ),
        (
            SchoolKind(0.45, (P,), None, "{stem} School", ("en",),
                       ("Ponsonby", "Remuera", "Kelburn", "Karori", "Riccarton", "Taradale", "Otaki", "Onslow")),
            SchoolKind(0.15, (J,), None, "{stem} Intermediate", ("en",), ("Ponsonby", "Kowhai", "Raroa", "Hutt")),
            SchoolKind(0.40, (J, S), None, "{stem} College", ("en",),
                       ("Rangitoto", "Onslow", "Hutt Valley", "Burnside", "Epsom", "Wellington East")),
        ),
        (("zh", 0.15), ("ja", 0.12), ("mi", 0.15)),
        sdg_boost={15: 1.5, 14: 1.5}, visit_rate=0.45, hosting_rate=0.45,
    ),
    CountryProfile(
        "KH", 0.02,
        _cities(
            ("Phnom Penh", "KH-12", 11.556, 104.928, 5), ("Siem Reap", "KH-17", 13.362, 103.860, 2),
            ("Battambang", "KH-2", 13.095, 103.202, 1.5), ("Sihanoukville", "KH-18", 10.627, 103.522, 1),
        ),
        (
            SchoolKind(0.6, (P,), None, "{stem} Primary School", ("km",),
                       ("Wat Phnom", "Chaktomuk", "Boeung Keng Kang", "Toul Tompoung", "Angkor", "Tonle Bassac")),
            SchoolKind(0.4, (J, S), None, "{stem} High School", ("km",),
                       ("Sisowath", "Preah Yukanthor", "Bak Touk", "Hun Neng", "Chea Sim")),
        ),
        (("en", 0.6), ("zh", 0.1)),
        sdg_boost={1: 1.5, 4: 1.3, 6: 1.5}, visit_rate=0.08, hosting_rate=0.3,
    ),
    CountryProfile(
        "MM", 0.015,
        _cities(
            ("Yangon", "MM-06", 16.866, 96.195, 5), ("Mandalay", "MM-04", 21.959, 96.089, 3),
            ("Naypyidaw", "MM-18", 19.763, 96.079, 1), ("Lashio", "MM-17", 22.936, 97.750, 1),
            ("Myitkyina", "MM-11", 25.383, 97.396, 0.5),
        ),
        (
            SchoolKind(0.5, (P,), None, "Basic Education Primary School No. {n}, {city}", ("my",)),
            SchoolKind(0.4, (J, S), None, "Basic Education High School No. {n}, {city}", ("my",)),
            SchoolKind(0.1, (P, J), None, "{stem} Chinese School, {city}", ("zh", "my"),
                       ("Fu Quan", "Kong Jiao", "Hua Xia", "Dong Fang"), PRIVATE),
        ),
        (("en", 0.5), ("zh", 0.08)),
        sdg_boost={4: 1.5, 3: 1.5, 1: 1.5}, visit_rate=0.08, hosting_rate=0.3,
    ),
    CountryProfile(
        "LA", 0.01,
        _cities(
            ("Vientiane", "LA-VT", 17.975, 102.633, 4), ("Luang Prabang", "LA-LP", 19.886, 102.135, 1),
            ("Pakse", "LA-CH", 15.120, 105.799, 1), ("Savannakhet", "LA-SV", 16.557, 104.752, 1),
        ),
        (
            SchoolKind(0.6, (P,), None, "{stem} Primary School", ("lo",),
                       ("Sisattanak", "Chanthabouly", "Xaysettha", "Nongbone", "Phonxay", "That Luang")),
            SchoolKind(0.4, (J, S), None, "{stem} Secondary School", ("lo",),
                       ("Dongdok", "Lycée", "Phiavat", "Sokpaluang", "Nongbone")),
        ),
        (("en", 0.5), ("zh", 0.12)),
        size_shift=-0.2, sdg_boost={2: 1.5, 6: 1.5, 15: 1.3, 14: 0.2}, visit_rate=0.08, hosting_rate=0.3,
    ),
    CountryProfile(
        "BN", 0.008,
        _cities(
            ("Bandar Seri Begawan", "BN-BM", 4.903, 114.940, 4), ("Kuala Belait", "BN-BE", 4.583, 114.231, 1),
            ("Tutong", "BN-TU", 4.803, 114.649, 1),
        ),
        (
            SchoolKind(0.55, (P,), "Sekolah Rendah {stem}", "{stem} Primary School", ("ms", "en"),
                       ("Pengiran Anak Puteri", "Lambak Kanan", "Gadong", "Kiulap", "Berakas", "Rimba")),
            SchoolKind(0.30, (J, S), "Sekolah Menengah {stem}", "{stem} Secondary School", ("ms", "en"),
                       ("Sultan Hassanal Bolkiah", "Rimba", "Berakas", "Tutong", "Menglait")),
            SchoolKind(0.15, (P, J, S), None, "{city} Chung Hwa Middle School", ("zh", "en", "ms"), (), PRIVATE),
        ),
        (("zh", 0.05),),
        size_shift=-0.2, sdg_boost={15: 2.0, 14: 1.5}, visit_rate=0.2, hosting_rate=0.4,
    ),
    CountryProfile(
        "BD", 0.01,
        _cities(
            ("Dhaka", "BD-C", 23.810, 90.412, 6), ("Chattogram", "BD-B", 22.357, 91.783, 3),
            ("Khulna", "BD-D", 22.846, 89.540, 1), ("Rajshahi", "BD-E", 24.374, 88.604, 1),
            ("Sylhet", "BD-G", 24.895, 91.869, 1),
        ),
        (
            SchoolKind(0.5, (P,), None, "{stem} Government Primary School", ("bn",),
                       ("Motijheel", "Dhanmondi", "Uttara", "Agrabad", "Mirpur", "Shaheed Smriti")),
            SchoolKind(0.35, (J, S), None, "{stem} High School", ("bn",),
                       ("Ideal", "Motijheel Model", "Government Laboratory", "Cantonment", "Collegiate")),
            SchoolKind(0.15, (P, J, S), None, "{city} Model School and College", ("bn", "en")),
        ),
        (("en", 0.7),),
        size_shift=0.4, sdg_boost={13: 2.0, 6: 1.5, 1: 1.5}, visit_rate=0.08, hosting_rate=0.3,
    ),
    CountryProfile(
        "NP", 0.01,
        _cities(
            ("Kathmandu", "NP-P3", 27.717, 85.324, 5), ("Lalitpur", "NP-P3", 27.667, 85.317, 2),
            ("Pokhara", "NP-P4", 28.210, 83.986, 2), ("Biratnagar", "NP-P1", 26.455, 87.270, 1),
            ("Butwal", "NP-P5", 27.700, 83.448, 1),
        ),
        (
            SchoolKind(0.45, (P, J), None, "Shree {stem} Basic School", ("ne",),
                       ("Saraswati", "Bhanu", "Janapremi", "Shanti", "Gyanodaya", "Padma")),
            SchoolKind(0.40, (J, S), None, "Shree {stem} Secondary School", ("ne",),
                       ("Durbar", "Janapremi", "Saraswati", "Himalaya", "Bal Kalyan")),
            SchoolKind(0.15, (P, J), None, "{stem} English Boarding School", ("en", "ne"),
                       ("Himalayan", "Everest", "Sunrise", "Little Angels"), PRIVATE),
        ),
        (("en", 0.8),),
        sdg_boost={15: 1.5, 13: 1.5, 6: 1.5, 14: 0.2}, visit_rate=0.08, hosting_rate=0.3,
    ),
    CountryProfile(
        "LK", 0.01,
        _cities(
            ("Colombo", "LK-1", 6.927, 79.861, 5), ("Kandy", "LK-2", 7.291, 80.634, 2),
            ("Galle", "LK-3", 6.053, 80.221, 1), ("Jaffna", "LK-4", 9.661, 80.026, 1),
        ),
        (
            SchoolKind(0.4, (P,), None, "{stem} Primary School", (REGIONAL,),
                       ("Ananda", "Nalanda", "Visakha", "Mahinda", "Vembadi", "Isipathana")),
            SchoolKind(0.4, (J, S), None, "{stem} Maha Vidyalaya", (REGIONAL,),
                       ("Dharmaraja", "Sujatha", "Jaffna Hindu", "Mahamaya", "Rahula")),
            SchoolKind(0.2, (J, S), None, "{stem} College", (REGIONAL, "en"),
                       ("Royal", "Kingswood", "Trinity", "Richmond", "St. John's")),
        ),
        (("en", 0.7),),
        sdg_boost={14: 1.5, 2: 1.5}, visit_rate=0.08, hosting_rate=0.3,
        regional_languages={"LK-4": "ta"}, default_regional_language="si",
    ),
    CountryProfile(
        "PK", 0.006,
        _cities(
            ("Islamabad", "PK-IS", 33.684, 73.048, 2), ("Lahore", "PK-PB", 31.520, 74.359, 4),
            ("Karachi", "PK-SD", 24.861, 67.010, 4), ("Peshawar", "PK-KP", 34.015, 71.525, 1),
        ),
        (
            SchoolKind(0.5, (P,), None, "Government Primary School {stem}, {city}", ("ur",),
                       ("No. 1", "No. 3", "Model Town", "Gulberg", "Saddar")),
            SchoolKind(0.35, (J, S), None, "Government High School No. {n}, {city}", ("ur", "en")),
            SchoolKind(0.15, (P, J, S), None, "{stem} Grammar School, {city}", ("en",),
                       ("City", "Beaconhouse", "Crescent", "Garrison"), PRIVATE, ("ur",)),
        ),
        (("en", 0.8),),
        size_shift=0.3, sdg_boost={5: 1.5, 6: 1.5, 4: 1.3}, visit_rate=0.08, hosting_rate=0.3,
    ),
    CountryProfile(
        "BT", 0.004,
        _cities(
            ("Thimphu", "BT-15", 27.472, 89.639, 3), ("Paro", "BT-11", 27.430, 89.413, 1),
            ("Punakha", "BT-23", 27.590, 89.860, 1),
        ),
        (
            SchoolKind(0.5, (P,), None, "{stem} Primary School", ("dz", "en"),
                       ("Changangkha", "Motithang", "Lungtenzampa", "Drukgyel", "Kelki")),
            SchoolKind(0.25, (J,), None, "{stem} Middle Secondary School", ("dz", "en"),
                       ("Changangkha", "Lungtenzampa", "Jigme Namgyel")),
            SchoolKind(0.25, (S,), None, "{stem} Higher Secondary School", ("dz", "en"),
                       ("Yangchenphug", "Motithang", "Drukgyel")),
        ),
        (),
        size_shift=-0.3, sdg_boost={15: 2.0, 3: 1.5, 14: 0.2}, visit_rate=0.08, hosting_rate=0.3,
    ),
    CountryProfile(
        "JP", 0.08,
        _cities(
            ("Tokyo", "JP-13", 35.690, 139.692, 10), ("Osaka", "JP-27", 34.694, 135.502, 5),
            ("Yokohama", "JP-14", 35.444, 139.638, 4), ("Nagoya", "JP-23", 35.181, 136.906, 3),
            ("Fukuoka", "JP-40", 33.590, 130.402, 2), ("Sapporo", "JP-01", 43.062, 141.354, 2),
            ("Kyoto", "JP-26", 35.012, 135.768, 2), ("Naha", "JP-47", 26.212, 127.681, 1),
            ("Sendai", "JP-04", 38.268, 140.870, 1.5), ("Hiroshima", "JP-34", 34.385, 132.455, 1.5),
        ),
        (
            SchoolKind(0.55, (P,), "{stem}小学校", "{stem} Elementary School", ("ja",), _JP_STEMS),
            SchoolKind(0.25, (J,), "{stem}中学校", "{stem} Junior High School", ("ja",), _JP_STEMS),
            SchoolKind(0.15, (S,), "{stem}高等学校", "{stem} High School", ("ja",), _JP_STEMS),
            SchoolKind(0.05, (V,), "{stem}工業高等学校", "{stem} Technical High School", ("ja",), _JP_STEMS),
        ),
        (("en", 0.7), ("zh", 0.1)),
        sdg_boost={11: 1.5, 7: 1.5, 9: 1.5}, visit_rate=0.45, hosting_rate=0.45,
    ),
    CountryProfile(
        "KR", 0.045,
        _cities(
            ("Seoul", "KR-11", 37.566, 126.978, 8), ("Busan", "KR-26", 35.180, 129.075, 3),
            ("Incheon", "KR-28", 37.456, 126.705, 2), ("Daegu", "KR-27", 35.871, 128.601, 2),
            ("Gwangju", "KR-29", 35.160, 126.851, 1), ("Daejeon", "KR-30", 36.350, 127.385, 1),
            ("Jeju", "KR-49", 33.499, 126.531, 1), ("Suwon", "KR-41", 37.263, 127.029, 2),
        ),
        (
            SchoolKind(0.55, (P,), "{stem}초등학교", "{stem} Elementary School", ("ko",), _KR_STEMS),
            SchoolKind(0.25, (J,), "{stem}중학교", "{stem} Middle School", ("ko",), _KR_STEMS),
            SchoolKind(0.15, (S,), "{stem}고등학교", "{stem} High School", ("ko",), _KR_STEMS),
            SchoolKind(0.05, (V,), "{stem}공업고등학교", "{stem} Technical High School", ("ko",), _KR_STEMS),
        ),
        (("en", 0.75), ("zh", 0.1)),
        sdg_boost={7: 1.5, 9: 1.5}, visit_rate=0.45, hosting_rate=0.45,
    ),
    CountryProfile(
        "US", 0.04,
        _cities(
            ("New York", "US-NY", 40.713, -74.006, 4), ("Los Angeles", "US-CA", 34.052, -118.244, 4),
            ("San Francisco", "US-CA", 37.775, -122.419, 2), ("Seattle", "US-WA", 47.606, -122.332, 2),
            ("Houston", "US-TX", 29.760, -95.370, 2), ("Chicago", "US-IL", 41.878, -87.630, 2),
            ("Boston", "US-MA", 42.360, -71.059, 1), ("Honolulu", "US-HI", 21.307, -157.858, 1),
        ),
        (
            SchoolKind(0.5, (P,), None, "{stem} Elementary School", ("en",), _US_STEMS),
            SchoolKind(0.2, (J,), None, "{stem} Middle School", ("en",), _US_STEMS),
            SchoolKind(0.3, (S,), None, "{stem} High School", ("en",), _US_STEMS),
        ),
        (("zh", 0.25), ("es", 0.2)),
        sdg_boost={5: 1.3, 10: 1.3, 16: 1.3}, visit_rate=0.45, hosting_rate=0.45,
    ),
    CountryProfile(
        "CA", 0.01,
        _cities(
            ("Vancouver", "CA-BC", 49.283, -123.121, 3), ("Toronto", "CA-ON", 43.653, -79.383, 4),
            ("Montreal", "CA-QC", 45.502, -73.567, 2), ("Calgary", "CA-AB", 51.045, -114.071, 1),
        ),
        (
            SchoolKind(0.55, (P,), None, "{stem} Elementary School", ("en",), _US_STEMS),
            SchoolKind(0.45, (J, S), None, "{stem} Secondary School", ("en",), _US_STEMS),
        ),
        (("fr", 0.3), ("zh", 0.15)),
        sdg_boost={15: 1.5, 13: 1.5}, visit_rate=0.45, hosting_rate=0.45,
    ),
    CountryProfile(
        "GB", 0.01,
        _cities(
            ("London", "GB-LND", 51.507, -0.128, 5), ("Manchester", "GB-MAN", 53.481, -2.243, 2),
            ("Edinburgh", "GB-EDH", 55.953, -3.188, 1), ("Birmingham", "GB-BIR", 52.486, -1.890, 2),
        ),
        (
            SchoolKind(0.55, (P,), None, "{stem} Primary School", ("en",), _EN_STEMS),
            SchoolKind(0.45, (J, S), None, "{stem} Academy", ("en",), _EN_STEMS),
        ),
        (("zh", 0.15), ("fr", 0.2)),
        sdg_boost={13: 1.5, 10: 1.3}, visit_rate=0.45, hosting_rate=0.45,
    ),
    CountryProfile(
        "DE", 0.006,
        _cities(
            ("Berlin", "DE-BE", 52.520, 13.405, 3), ("Hamburg", "DE-HH", 53.551, 9.994, 2),
            ("Munich", "DE-BY", 48.137, 11.576, 2), ("Frankfurt", "DE-HE", 50.110, 8.682, 1),
        ),
        (
            SchoolKind(0.5, (P,), "{stem}-Grundschule", "{stem} Primary School", ("de",),
                       ("Goethe", "Schiller", "Humboldt", "Lessing", "Fontane")),
            SchoolKind(0.5, (J, S), "{stem}-Gymnasium", "{stem} Gymnasium", ("de",),
                       ("Goethe", "Schiller", "Humboldt", "Kant", "Leibniz")),
        ),
        (("en", 0.85), ("zh", 0.05)),
        sdg_boost={7: 2.0, 12: 1.5}, visit_rate=0.45, hosting_rate=0.45,
    ),
)
COUNTRY_BY_CODE: dict[str, CountryProfile] = {c.code: c for c in COUNTRIES}

# How Taiwanese schools choose their New Southbound focus: where exchange with Taiwan is busiest.
TAIWAN_TARGET_WEIGHTS: dict[str, float] = {
    "MY": 0.22, "VN": 0.13, "TH": 0.11, "ID": 0.11, "PH": 0.08, "SG": 0.07, "AU": 0.07, "IN": 0.05, "NZ": 0.03,
    "KH": 0.02, "MM": 0.02, "BN": 0.01, "LA": 0.01, "BD": 0.005, "NP": 0.005, "LK": 0.005, "PK": 0.003,
    "BT": 0.002,
}
# Outside the New Southbound list, the countries Taiwanese schools most often add.
TAIWAN_OTHER_TARGETS: dict[str, float] = {"JP": 0.55, "KR": 0.25, "US": 0.2}
