"""Two differently generated synthetic customer bases with a planted seed segment, for the
look-alike measurement (benchmarks/lookalike/measure.py) and its bounded test.

- ``personas``: six personas, each with its own categories, cities, ages, channels, spending
  and discount habits; the seed is mostly one persona, a little of a similar one and a few
  of everyone (planted clusters, with noise on every trait).
- ``latent``: no clusters: every customer has three continuous hidden traits that drive age,
  gender, spending, frequency, categories (a random linear map), city, channel, views and
  discounts; seed membership is a logistic function of the hidden traits.

Each customer becomes a segmentation ApplyProfileChangeRequest (profile + events), with the
attributes ``lal_base`` (the base's tag) and ``lal_seed`` ("yes" for visible seed members,
"hidden" for the fifth of the seed held back, "no" for the others). Attributes are not
look-alike features, so the hidden members are found only through what they resemble.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import uuid
from dataclasses import dataclass, field
from decimal import Decimal

from google.type import date_pb2, money_pb2

from svod.common.v1 import common_pb2
from svod.profile.v1 import profile_pb2
from svod.segmentation.v1 import segmentation_pb2 as pb
from svod_runtime.protoconv import datetime_to_timestamp

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
HIDDEN_SHARE = 0.2
CHANNELS = {
    "pos": common_pb2.SOURCE_CHANNEL_POS,
    "web": common_pb2.SOURCE_CHANNEL_WEB,
    "app": common_pb2.SOURCE_CHANNEL_APP,
}


def _rub(amount: float) -> money_pb2.Money:
    value = Decimal(str(round(amount, 2)))
    units = int(value)
    return money_pb2.Money(currency_code="RUB", units=units, nanos=int((value - units) * 10**9))


@dataclass
class Order:
    at: dt.datetime
    amount: float
    discount: float
    categories: tuple[str, ...]
    channel: str


@dataclass
class Synthetic:
    customer_id: str
    gender: int
    birth_year: int
    city: str
    orders: list[Order] = field(default_factory=list)
    views: int = 0
    sessions: int = 0
    in_seed: bool = False
    hidden: bool = False

    def request(self, tag: str) -> pb.ApplyProfileChangeRequest:
        orders = sorted(self.orders, key=lambda o: o.at)
        spent = sum(o.amount for o in orders)
        metrics = profile_pb2.Metrics(
            order_count=len(orders),
            total_spent=_rub(spent),
            average_order_value=_rub(spent / len(orders) if orders else 0),
            channels=sorted({o.channel for o in orders}),
            items_bought=sum(len(o.categories) for o in orders),
            session_count=self.sessions,
        )
        if orders:
            metrics.first_order_time.CopyFrom(datetime_to_timestamp(orders[0].at))
            metrics.last_order_time.CopyFrom(datetime_to_timestamp(orders[-1].at))
        seed = "hidden" if self.hidden else "yes" if self.in_seed else "no"
        profile = profile_pb2.Profile(
            customer_id=self.customer_id,
            first_name=profile_pb2.TraitValue(value="Имя"),
            gender=self.gender,  # type: ignore[arg-type]
            birth_date=date_pb2.Date(year=self.birth_year, month=6, day=15),
            addresses=[common_pb2.PostalAddress(country_code="RU", city=self.city)],
            metrics=metrics,
            sources=[
                profile_pb2.ProfileSource(source=f"{c}-shop", channel=CHANNELS[c])
                for c in sorted({o.channel for o in orders})
            ],
            attributes={"lal_base": tag, "lal_seed": seed},
            version=1,
        )
        profile.create_time.CopyFrom(datetime_to_timestamp(NOW - dt.timedelta(days=400)))
        events = []
        for index, order in enumerate(orders):
            entry = profile_pb2.TimelineEntry(
                event_type="order_placed",
                occurred_time=datetime_to_timestamp(order.at),
                source=f"{order.channel}-shop",
                channel=CHANNELS[order.channel],  # type: ignore[arg-type]
                record_ref=common_pb2.RecordRef(
                    source="lal", message_id=f"{self.customer_id}-o{index}"
                ),
                categories=list(order.categories),
            )
            entry.amount.CopyFrom(_rub(order.amount))
            if order.discount:
                entry.discount.CopyFrom(_rub(order.discount))
            events.append(entry)
        for kind, count in (("product_viewed", self.views), ("session_started", self.sessions)):
            for index in range(count):
                events.append(
                    profile_pb2.TimelineEntry(
                        event_type=kind,
                        occurred_time=datetime_to_timestamp(NOW - dt.timedelta(days=1 + index)),
                        source="web-shop",
                        channel=common_pb2.SOURCE_CHANNEL_WEB,
                        record_ref=common_pb2.RecordRef(
                            source="lal", message_id=f"{self.customer_id}-{kind}{index}"
                        ),
                    )
                )
        return pb.ApplyProfileChangeRequest(
            customer_id=self.customer_id, profile_version=1, profile=profile, new_events=events
        )


def _orders(
    rng: random.Random,
    count: int,
    categories: list[str],
    weights: list[float],
    mean_amount: float,
    discount_p: float,
    channel_weights: dict[str, float],
    recency_days: float,
) -> list[Order]:
    out = []
    last = rng.expovariate(1 / max(recency_days, 1))
    for index in range(count):
        at = NOW - dt.timedelta(days=min(700, last + index * rng.uniform(5, 60)))
        amount = rng.lognormvariate(math.log(mean_amount), 0.4)
        picked = tuple(sorted(set(rng.choices(categories, weights, k=rng.randint(1, 3)))))
        discount = amount * 0.2 if rng.random() < discount_p else 0.0
        channel = rng.choices(list(channel_weights), list(channel_weights.values()))[0]
        out.append(Order(at, amount, discount, picked, channel))
    return out


def _hide(rng: random.Random, people: list[Synthetic]) -> list[Synthetic]:
    seed = [p for p in people if p.in_seed]
    for person in rng.sample(seed, round(len(seed) * HIDDEN_SHARE)):
        person.hidden = True
    return people


PERSONA_CATEGORIES = [
    "shoes",
    "dresses",
    "kids",
    "toys",
    "sport",
    "outdoor",
    "beauty",
    "perfume",
    "electronics",
    "books",
    "home",
    "garden",
]
CITIES = [
    "Москва",
    "Санкт-Петербург",
    "Казань",
    "Новосибирск",
    "Екатеринбург",
    "Самара",
    "Пермь",
    "Сочи",
]


def personas(count: int, seed: int = 1) -> list[Synthetic]:
    rng = random.Random(seed)
    kinds = []
    for _ in range(6):
        favourite = rng.sample(range(len(PERSONA_CATEGORIES)), 3)
        weights = [6.0 if i in favourite else 0.4 for i in range(len(PERSONA_CATEGORIES))]
        kinds.append(
            {
                "weights": weights,
                "cities": [
                    4.0 if i in rng.sample(range(len(CITIES)), 2) else 0.5
                    for i in range(len(CITIES))
                ],
                "age": rng.uniform(22, 60),
                "female": rng.uniform(0.15, 0.85),
                "orders": rng.uniform(1, 8),
                "amount": rng.uniform(800, 9000),
                "discount": rng.uniform(0.05, 0.8),
                "channels": dict(
                    zip(("pos", "web", "app"), (rng.random() for _ in range(3)), strict=True)
                ),
                "recency": rng.uniform(10, 200),
                "views": rng.uniform(0, 12),
            }
        )
    seed_p = [0.6, 0.15, 0.02, 0.02, 0.02, 0.02]
    people = []
    for _ in range(count):
        k = rng.choices(range(6), [3, 2, 2, 2, 2, 2])[0]
        p = kinds[k]
        person = Synthetic(
            customer_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            gender=common_pb2.GENDER_FEMALE
            if rng.random() < p["female"]
            else common_pb2.GENDER_MALE,
            birth_year=NOW.year - max(16, int(rng.gauss(p["age"], 7))),
            city=rng.choices(CITIES, p["cities"])[0],
            views=int(rng.expovariate(1 / max(p["views"], 0.1))),
            sessions=rng.randint(0, 6),
            in_seed=rng.random() < seed_p[k],
        )
        person.orders = _orders(
            rng,
            max(0, int(rng.gauss(p["orders"], 1.5))),
            PERSONA_CATEGORIES,
            p["weights"],
            p["amount"],
            p["discount"],
            p["channels"],
            p["recency"],
        )
        people.append(person)
    return _hide(rng, people)


LATENT_CATEGORIES = [
    "fishing",
    "tools",
    "cars",
    "pets",
    "music",
    "games",
    "coffee",
    "wine",
    "yoga",
    "travel",
]
LATENT_CITIES = ["Тверь", "Омск", "Томск", "Уфа", "Тула"]


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def latent(count: int, seed: int = 2) -> list[Synthetic]:
    rng = random.Random(seed)
    w = [[rng.gauss(0, 1.2) for _ in range(3)] for _ in LATENT_CATEGORIES]
    v = [[rng.gauss(0, 1.0) for _ in range(3)] for _ in LATENT_CITIES]
    people = []
    for _ in range(count):
        z = [rng.gauss(0, 1) for _ in range(3)]
        logits = [sum(a * b for a, b in zip(row, z, strict=True)) for row in w]
        top = max(logits)
        weights = [math.exp(x - top) for x in logits]
        city_scores = [
            sum(a * b for a, b in zip(row, z, strict=True)) - math.log(-math.log(rng.random()))
            for row in v
        ]
        person = Synthetic(
            customer_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            gender=common_pb2.GENDER_FEMALE
            if rng.random() < _sigmoid(1.5 * z[1])
            else common_pb2.GENDER_MALE,
            birth_year=NOW.year - max(16, int(38 + 11 * z[2] + rng.gauss(0, 4))),
            city=LATENT_CITIES[city_scores.index(max(city_scores))],
            views=int(rng.expovariate(1 / math.exp(1 + 0.5 * z[2]))),
            sessions=int(rng.expovariate(1 / math.exp(0.5 + 0.4 * z[0]))),
            in_seed=rng.random() < _sigmoid(1.8 * z[0] - 1.2 * z[2] + 0.8 * z[1] - 2.5),
        )
        app_p = _sigmoid(2 * z[0] - 1)
        person.orders = _orders(
            rng,
            min(25, int(rng.expovariate(1 / math.exp(0.8 + 0.6 * z[0])))),
            LATENT_CATEGORIES,
            weights,
            math.exp(7.5 + 0.4 * z[1]),
            _sigmoid(-1.5 * z[1]),
            {"app": app_p, "web": (1 - app_p) * 0.6, "pos": (1 - app_p) * 0.4},
            math.exp(3.5 - 0.7 * z[0]),
        )
        people.append(person)
    return _hide(rng, people)


BASES = {"personas": personas, "latent": latent}
