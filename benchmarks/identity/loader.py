"""Bulk-loads a synthetic identity graph straight into the identity schema (set-based SQL).

One customer per record, each with a mobile phone, every other one an e-mail, a Russian name
(Faker's ru_RU lists), a birth date and a city. The rows are what ``Resolve`` would have
written for such records - customers, records, identifiers, record_identifiers and the
blocking keys - with the name parts of the keys (canonical first-name key, surname phonetic key,
city key) computed by the matcher's own functions, so that the service finds candidates in the
loaded graph exactly as it would in one it built itself. ``check_keys`` verifies that on a
sample. The ledger is not filled (nothing on the resolve path reads it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import psycopg
from faker.providers.person.ru_RU import Provider as RuPerson

from svod_identity.domain.engine import person_from
from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.matching.blocking import blocking_keys
from svod_identity.domain.matching.compare import view
from svod_identity.domain.matching.contacts import (  # the placeholder rule, mirrored in SQL
    _PLACEHOLDER_NATIONAL,
    _PLACEHOLDER_SUBSCRIBERS,
)
from svod_identity.domain.matching.places import city_key
from svod_identity.domain.matching.record import PLACEHOLDER_BIRTH_DATES, build_person_record
from svod_identity.domain.matching.surnames import surname_key
from svod_runtime.db import libpq_url

CITIES = (
    "Москва",
    "Санкт-Петербург",
    "Новосибирск",
    "Екатеринбург",
    "Казань",
    "Нижний Новгород",
    "Челябинск",
    "Самара",
    "Омск",
    "Ростов-на-Дону",
    "Уфа",
    "Красноярск",
    "Воронеж",
    "Пермь",
    "Волгоград",
    "Краснодар",
    "Саратов",
    "Тюмень",
    "Тольятти",
    "Ижевск",
)
# Mobile operator codes; the subscriber number is a permutation of the customer number.
CODES = ("916", "926", "903", "985")
BIRTH_START = dt.date(1950, 1, 1)
BIRTH_DAYS = 20_000


def _hash(salt: str, n: int) -> int:
    """A number for customer ``n`` (28 bits of md5), the same as ``_sql_hash`` in SQL."""
    return int(hashlib.md5(f"{salt}{n}".encode()).hexdigest()[:7], 16)


def _sql_hash(salt: str) -> str:
    return f"('x' || substr(md5('{salt}' || n), 1, 7))::bit(28)::int"


def person_numbers(n: int, firsts: int, lasts: int) -> tuple[int, int, int, int]:
    """Customer ``n``'s first name, surname (indexes in its gender's lists of ``firsts`` and
    ``lasts``), birth date (days after BIRTH_START) and city (index in CITIES), each drawn
    from a hash of ``n``. They were linear in ``n`` (``n * 7907 % surnames``, ...) with periods
    sharing factors: from 140,000 customers up every woman had namesakes with her birth date
    and city (at 1M, 500,000 women in groups of up to 8 of one first name, surname and birth
    date; every ``db:`` block exactly 50 people), so a returning customer's record merged
    them all and a benchmark at that size measured merges. Drawn independently, two
    customers share all three about as often as by chance (~400 pairs at 1M)."""
    return (
        _hash("f", n) % firsts,
        _hash("l", n) % lasts,
        _hash("b", n) % BIRTH_DAYS,
        _hash("c", n) % len(CITIES),
    )


def _first_names() -> list[tuple[str, str, str]]:
    """(name, gender, first blocking key) for Faker's ru_RU first names."""
    out = []
    for gender, names in (
        ("male", RuPerson.first_names_male),
        ("female", RuPerson.first_names_female),
    ):
        for name in dict.fromkeys(names):
            first = view(build_person_record("x", first_name=name, gender=gender)).first
            keys = sorted(k for k in first.keys if len(k) > 1) if first else []
            if keys:
                out.append((name, gender, keys[0]))
    return out


def _surnames() -> list[tuple[str, str, str]]:
    out = []
    for gender, names in (
        ("male", RuPerson.last_names_male),
        ("female", RuPerson.last_names_female),
    ):
        out += [(name, gender, surname_key(name)) for name in dict.fromkeys(names)]
    return out


def load_identity(db_url: str, count: int) -> None:
    """``count`` customers with one record each; record pks and customer numbers are 1..count."""
    firsts, lasts = _first_names(), _surnames()
    with psycopg.connect(libpq_url(db_url), autocommit=True) as conn:
        conn.execute("SET search_path TO identity")
        conn.execute("SET synchronous_commit TO off")
        conn.execute(
            "CREATE TEMP TABLE bench_first (gender text, i int, name text, k text, "
            "PRIMARY KEY (gender, i))"
        )
        conn.execute(
            "CREATE TEMP TABLE bench_last (gender text, i int, name text, k text, "
            "PRIMARY KEY (gender, i))"
        )
        conn.execute("CREATE TEMP TABLE bench_city (i int PRIMARY KEY, name text, k text)")
        with conn.cursor() as cur:
            for table, rows in (("bench_first", firsts), ("bench_last", lasts)):
                counters: dict[str, int] = {}
                numbered = []
                for name, gender, key in rows:
                    i = counters.get(gender, 0)
                    counters[gender] = i + 1
                    numbered.append((gender, i, name, key))
                cur.executemany(f"INSERT INTO {table} VALUES (%s, %s, %s, %s)", numbered)
            cur.executemany(
                "INSERT INTO bench_city VALUES (%s, %s, %s)",
                [(i, name, city_key(name)) for i, name in enumerate(CITIES)],
            )
        n_first = {g: sum(1 for f in firsts if f[1] == g) for g in ("male", "female")}
        n_last = {g: sum(1 for s in lasts if s[1] == g) for g in ("male", "female")}
        conn.execute(
            """
            CREATE TEMP TABLE bench_people AS
            SELECT n, g.gender,
                   (md5('c' || n))::uuid AS customer_id,
                   '+7' || (ARRAY['916','926','903','985'])[1 + n %% 4]
                        || (1000000 + (n::bigint * 7919) %% 9000000)::text AS phone,
                   CASE WHEN n %% 2 = 1 THEN 'c' || n || '@mail.ru' END AS email,
                   f.name AS first_name, f.k AS first_key,
                   l.name AS last_name, l.k AS last_key,
                   (DATE '1950-01-01' + h.b %% %(days)s) AS birth,
                   c.name AS city, c.k AS city_key
            FROM generate_series(1, %(n)s) AS n
            CROSS JOIN LATERAL (SELECT CASE WHEN n %% 2 = 0 THEN 'male' ELSE 'female' END
                                AS gender) g
            -- person_numbers(), in SQL
            CROSS JOIN LATERAL (SELECT {f} AS f, {l} AS l, {b} AS b, {c} AS c) h
            JOIN bench_first f ON f.gender = g.gender
                AND f.i = h.f %% CASE g.gender WHEN 'male' THEN %(fm)s ELSE %(ff)s END
            JOIN bench_last l ON l.gender = g.gender
                AND l.i = h.l %% CASE g.gender WHEN 'male' THEN %(lm)s ELSE %(lf)s END
            JOIN bench_city c ON c.i = h.c %% %(cities)s
            """.format(**{salt: _sql_hash(salt) for salt in "flbc"}),
            {
                "n": count,
                "days": BIRTH_DAYS,
                "fm": n_first["male"],
                "ff": n_first["female"],
                "lm": n_last["male"],
                "lf": n_last["female"],
                "cities": len(CITIES),
            },
        )
        conn.execute(
            "INSERT INTO customers (customer_id, created_at) "
            "SELECT customer_id, now() - interval '1 day' FROM bench_people"
        )
        conn.execute(
            """
            INSERT INTO records (record_pk, source, message_id, customer_id, channel,
                                 observed_at, identifiers, attributes, outcome, rule, evidence)
            SELECT n, 'bench', 'b-' || n, customer_id, 'pos', now() - interval '1 day',
                   CASE WHEN email IS NULL THEN jsonb_build_array(jsonb_build_array('phone',
                            '', phone))
                        ELSE jsonb_build_array(jsonb_build_array('phone', '', phone),
                            jsonb_build_array('email', '', email)) END,
                   jsonb_build_object('first_name', first_name, 'last_name', last_name,
                       'birth_date', birth::text, 'gender', gender,
                       'addresses', jsonb_build_array(jsonb_build_object('city', city))),
                   'created', 'new_customer', '{"kind": "new_customer"}'
            FROM bench_people
            """
        )
        conn.execute("SELECT setval('records_record_pk_seq', (SELECT max(record_pk) FROM records))")
        conn.execute(
            """
            INSERT INTO identifiers (id_type, namespace, value, customer_id, first_source,
                                     first_seen, last_seen)
            SELECT 'phone', '', phone, customer_id, 'bench', now(), now() FROM bench_people
            UNION ALL
            SELECT 'email', '', email, customer_id, 'bench', now(), now() FROM bench_people
            WHERE email IS NOT NULL
            """
        )
        conn.execute(
            """
            INSERT INTO record_identifiers (id_type, namespace, value, record_pk)
            SELECT 'phone', '', phone, n FROM bench_people
            UNION ALL
            SELECT 'email', '', email, n FROM bench_people WHERE email IS NOT NULL
            """
        )
        conn.execute(
            """
            INSERT INTO blocking_keys (key, record_pk)
            SELECT DISTINCT key, n FROM bench_people, LATERAL (VALUES
                ('p:' || phone),
                -- The mailbox name alone when distinctive (4+ characters), else the address.
                (CASE WHEN n >= 100 THEN 'e:c' || n ELSE 'e:' || email END),
                ('fb:' || first_key || ':' || to_char(birth, 'YYYYMMDD')),
                ('sb:' || last_key || ':' || to_char(birth, 'YYYY')),
                ('fs:' || first_key || ':' || last_key),
                ('db:' || to_char(birth, 'YYYYMMDD') || ':' || city_key)
            ) AS k(key)
            WHERE key IS NOT NULL AND (email IS NOT NULL OR key NOT LIKE 'e:%%')
              -- The matcher gives placeholder-looking phones no key (contacts.py): one or two
              -- digits repeated in the subscriber part, counting sequences, dummy numbers.
              AND NOT (key LIKE 'p:%%' AND (
                  (SELECT count(DISTINCT d) FROM regexp_split_to_table(right(phone, 7), '') d)
                      <= 2
                  OR right(phone, 7) IN ({subscribers})
                  OR substr(phone, 3) IN ({nationals})))
              -- Nor birth-date keys for the dates systems put in for unknown ones (record.py).
              AND NOT (key ~ '^(fb|sb|db):' AND birth IN ({placeholder_dates}))
            """.format(
                subscribers=", ".join(f"'{v}'" for v in sorted(_PLACEHOLDER_SUBSCRIBERS)),
                nationals=", ".join(f"'{v}'" for v in sorted(_PLACEHOLDER_NATIONAL)),
                placeholder_dates=", ".join(
                    f"DATE '{d.isoformat()}'" for d in sorted(PLACEHOLDER_BIRTH_DATES)
                ),
            )
        )
        conn.execute("VACUUM ANALYZE customers")
        conn.execute("VACUUM ANALYZE records")
        conn.execute("VACUUM ANALYZE identifiers")
        conn.execute("VACUUM ANALYZE record_identifiers")
        conn.execute("VACUUM ANALYZE blocking_keys")


def check_keys(db_url: str, sample: int = 200) -> int:
    """How many sampled loaded records have blocking keys other than the matcher's own."""
    wrong = 0
    with psycopg.connect(libpq_url(db_url), autocommit=True) as conn:
        conn.execute("SET search_path TO identity")
        rows = conn.execute(
            """
            SELECT r.record_pk, r.attributes, r.identifiers,
                   array_agg(b.key ORDER BY b.key) AS keys
            FROM records r JOIN blocking_keys b USING (record_pk)
            WHERE r.record_pk IN (SELECT record_pk FROM records ORDER BY random() LIMIT %s)
            GROUP BY r.record_pk, r.attributes, r.identifiers
            """,
            (sample,),
        ).fetchall()
    for _, attributes, identifiers, keys in rows:
        idents = [IdentifierKey(t, v, n) for t, n, v in identifiers]
        expected = sorted(blocking_keys(person_from("0", attributes, idents)))
        if expected != sorted(keys):
            wrong += 1
            if wrong <= 3:
                print("key mismatch:", json.dumps([expected, keys], ensure_ascii=False))
    return wrong
