"""The tutorial's application: rank items for a user from views and clicks.

Named ``clicks:app`` on the command line (run the commands from this
directory: loopline looks for the module in the current directory first).

Two entities, ``user`` and ``item``, read two topics: ``events`` (views and
clicks, keyed by user) and ``items`` (the item table). A model that reads
features of both ranks items for a user: ``POST /v1/rank`` scores each
candidate item with the user's features, the item's, and the derived ones
across the pair.
"""

from __future__ import annotations

import functools

from loopline import App
from loopline.features import Aggregations, Count, Derived, Entity, FeatureSet, Last
from loopline.features import Table, TableFeature
from loopline.models.declarations import Model
from loopline.models.trainers import LightGBMTrainer
from loopline.outcomes import Outcomes

user = Entity("user", key="user_id")
item = Entity("item", key="item_id")


def _is(kind):
    return lambda event: event["event"] == kind


def rate(clicks: int, views: int) -> float:
    """Clicks per view, pulled towards 10 % while there are few views."""
    return (clicks + 1) / (views + 10)


def same(a: object, b: object) -> float:
    return float(a is not None and a == b)


# user features: from the events, keyed by user_id (the topic's key)
per_user = Aggregations("events", user, time="at", features=[
    Count(window="lifetime", name="user_views", where=_is("view")),
    Count(window="24h", name="user_views_24h", where=_is("view")),
    Count(window="lifetime", name="user_clicks", where=_is("click")),
    Last("category", window="lifetime", name="user_last_category", where=_is("click")),
])  # fmt: skip

# item features: the same events, counted per item_id
per_item = Aggregations("events", item, time="at", key="item_id", features=[
    Count(window="lifetime", name="item_views", where=_is("view")),
    Count(window="lifetime", name="item_clicks", where=_is("click")),
])  # fmt: skip

# the item table: the latest category and price of each item as of any instant
items = Table("items", item, [
    TableFeature("category", "category", default=""),
    TableFeature("price", "price", default=0.0),
])  # fmt: skip

derived = [
    Derived("user_ctr", ("user_clicks", "user_views"), rate, default=0.1),
    Derived("item_ctr", ("item_clicks", "item_views"), rate, default=0.1),
    # user x item: is the item in the category this user clicked last?
    Derived("same_category", ("user_last_category", "category"), same, default=0.0),
]

FEATURES = ["user_ctr", "user_views_24h", "item_ctr", "item_views", "price", "same_category"]
# `category` and `user_last_category` are strings: the model reads them only through
# `same_category`. Once string features train (loopline issue 17, item 3), `category`
# can go into FEATURES itself, as a LightGBM categorical.

ranker = Model(
    "ranker",
    trainer=functools.partial(
        LightGBMTrainer, {"num_leaves": 8, "min_data_in_leaf": 20}, num_boost_round=60
    ),
    entity="user",
    features=FEATURES,
)

app = App(
    "clicks",
    features=FeatureSet([per_user, per_item], tables=[items], derived=derived),
    models=[ranker],
    # a returned item clicked within 5 s is a positive example, one not clicked a negative
    outcomes=Outcomes(window="5s", positive=["click"]),
)
