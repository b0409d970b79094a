"""The cells of the notebook the browser test builds to draw every plugin's dashboard.

``SETUP`` comes first; then one cell per dashboard, each with a little data of its own (its
own in-process database) and ending with the view, so JupyterLab shows the live widget; the
last cell disconnects everything. ``notebook()`` returns it as nbformat v4 JSON.
:func:`test_cells_render_headless` (in ``test_jupyterlab.py``) runs the same cells without a
browser, so a broken cell fails fast and is not mistaken for a front-end problem.
"""

from __future__ import annotations

import json
from typing import Any

SETUP = """\
import datetime as dt
import shutil
import tempfile

import numpy as np
import pandas as pd
import s3db_nb

WORK = tempfile.mkdtemp(prefix="dashboards-")
DATABASES = []


def database(name, url=None):
    db = s3db_nb.connect(url or f"memory://dashboards-{name}")
    DATABASES.append(db)
    return db


def people(db, n=20):
    users = db.create_resource("users", {"name": "string", "city": "string|optional"})
    users.insert_many([{"id": f"u{i:02d}", "name": f"User {i}", "city": ["Lisbon", "Porto", "Recife"][i % 3]} for i in range(n)])
    return users
"""

#: (dashboard name, cell source): the name is the screenshot's, ``dashboard-<name>.png``
DASHBOARDS: list[tuple[str, str]] = [
    (
        "costs",
        """\
from s3db_nb.plugins.costs import CostsPlugin

db = database("costs")
costs = db.use_plugin(CostsPlugin)
users = people(db, 40)
users.to_pandas(progress=False)
costs.dashboard()
""",
    ),
    (
        "metrics",
        """\
from s3db_nb.plugins.metrics import MetricsPlugin

db = database("metrics", f"file://{WORK}/metrics")
metrics = db.use_plugin(MetricsPlugin(flush_interval=None))
users = people(db, 50)
users.get("u01"), users.count(), len(users.to_pandas(progress=False))
metrics.dashboard()
""",
    ),
    (
        "audit",
        """\
from s3db_nb.plugins.audit import AuditPlugin
from s3db_nb.plugins.geo import GeoPlugin

geo_db = database("audit")
stores = geo_db.create_resource("stores", {"name": "string", "lat": "number", "lon": "number"})
geo = geo_db.use_plugin(GeoPlugin(resources={"stores": {"lat_field": "lat", "lon_field": "lon"}}))
audit = geo_db.use_plugin(AuditPlugin(get_current_user_id=lambda: "analyst"))
stores.insert_many([
    {"id": "s1", "name": "Paulista Roasters", "lat": -23.5614, "lon": -46.6559},
    {"id": "s2", "name": "Augusta Brew", "lat": -23.5540, "lon": -46.6580},
    {"id": "s3", "name": "Santos Harbour", "lat": -23.9608, "lon": -46.3336},
])
stores.update("s1", {"name": "Paulista Roasters & Co", "lat": -23.5620})
audit.dashboard().select("stores", "s1")
""",
    ),
    (
        "geo",
        """\
geo_view = geo.dashboard()
geo_view.search(-23.5614, -46.6559, 4, resource="stores")
geo_view
""",
    ),
    (
        "importer",
        """\
from s3db_nb.plugins.importer import ImporterPlugin

db = database("importer")
db.create_resource("stores", {"name": "string|min:2", "city": "string"})
source = f"{WORK}/stores.csv"
pd.DataFrame([["s1", "Paulista", "São Paulo"], ["s2", "X", "Rio"]], columns=["store_id", "Name", "City"]).to_csv(source, index=False)
importer = db.use_plugin(ImporterPlugin())
importer.import_data("stores", source, mapping={"store_id": "id", "Name": "name", "City": "city"}, progress=False)
importer_view = importer.dashboard()
importer_view.widget  # the controls, so Preview runs as the button would
importer_view.source.value = source
importer_view.preview_button.click()
importer_view
""",
    ),
    (
        "vector",
        """\
from s3db_nb.plugins.vector import VectorPlugin

db = database("vector")
docs = db.create_resource("docs", {"title": "string", "vec": "embedding:16"})
rng = np.random.default_rng(1)
centres = rng.normal(0, 4, (3, 16))
docs.insert_many([
    {"id": f"d{i:02d}", "title": f"document {i}", "vec": (centres[i % 3] + rng.normal(0, 1, 16)).round(4).tolist()} for i in range(60)
])
vector_view = db.use_plugin(VectorPlugin()).dashboard()
vector_view.set_query("d04")
vector_view
""",
    ),
    (
        "cache",
        """\
from s3db_nb.plugins.cache import CachePlugin

db = database("cache")
users = people(db, 10)
cache = db.use_plugin(CachePlugin(ttl=600))
for key in ["u01", "u01", "u02", "u03", "u01"]:
    users.get(key)
users.count(), users.count()
cache.dashboard()
""",
    ),
    (
        "fulltext",
        """\
from s3db_nb.plugins.fulltext import FullTextPlugin

db = database("fulltext")
notes = db.create_resource("notes", {"title": "string", "body": "string"})
fulltext = db.use_plugin(FullTextPlugin(fields={"notes": {"title": 2.0, "body": 1.0}}))
notes.insert_many([
    {"id": "n1", "title": "Cold brew", "body": "Coffee steeped cold for twelve hours"},
    {"id": "n2", "title": "Espresso", "body": "Coffee pushed through a fine puck under pressure"},
    {"id": "n3", "title": "Matcha", "body": "Green tea whisked with hot water"},
])
fulltext.dashboard().search("coffee", resource="notes")
""",
    ),
    (
        "backup",
        """\
from s3db_nb.plugins.backup import BackupPlugin

db = database("backup")
users = people(db, 8)
backup = db.use_plugin(BackupPlugin(config={"path": f"{WORK}/backups"}, retention=None))
full = backup.backup("full", resources=["users"])
users.update("u00", {"name": "Changed"})
users.delete("u01")
backup.dashboard().select(full["id"], mode="replace")
""",
    ),
    (
        "replicator",
        """\
from s3db_nb.plugins.replicator import ReplicatorPlugin

db = database("replicator")
users = db.create_resource("users", {"name": "string", "city": "string|optional"})
replicator = db.use_plugin(
    ReplicatorPlugin(replicators=[{"driver": "sqlite", "config": {"path": f"{WORK}/mirror.db"}, "resources": ["users"]}])
)
users.insert_many([{"id": f"u{i}", "name": f"User {i}"} for i in range(12)])
replicator.wait(timeout=60)
replicator.dashboard()
""",
    ),
    (
        "scheduler",
        """\
from s3db_nb.plugins.scheduler import SchedulerPlugin

db = database("scheduler")
scheduler = db.use_plugin(
    SchedulerPlugin(jobs={"nightly-report": {"schedule": "0 3 * * *", "action": lambda: "ok", "description": "the sales report"}})
)
scheduler.run_job("nightly-report")
scheduler.dashboard()
""",
    ),
    (
        "ttl",
        """\
from s3db_nb.plugins.ttl import TTLPlugin

db = database("ttl")
sessions = db.create_resource("sessions", {"user": "string"}, timestamps=True)
ttl = db.use_plugin(TTLPlugin(resources={"sessions": {"ttl": 900, "on_expire": "hard-delete"}}))
sessions.insert_many([{"id": f"s{i}", "user": f"u{i}"} for i in range(5)])
ttl.dashboard()
""",
    ),
    (
        "s3_queue",
        """\
from s3db_nb.plugins.s3_queue import S3QueuePlugin

db = database("queue")
jobs = db.create_resource("jobs", {"url": "string"})
queue = db.use_plugin(S3QueuePlugin(resource="jobs", max_attempts=1, worker_id="notebook"))
jobs.enqueue_many([{"id": f"j{i}", "url": f"https://example.com/{i}.jpg"} for i in range(6)])
queue.queue_stats()
for _ in range(4):
    queue.process_next(lambda record, context: {"ok": True})
queue.queue_stats()
queue.dashboard()
""",
    ),
    (
        "eventual_consistency",
        """\
from s3db_nb.plugins.eventual_consistency import EventualConsistencyPlugin

db = database("ec")
ec = db.use_plugin(EventualConsistencyPlugin(resources={"wallets": ["balance"]}, mode="sync", enable_analytics=True))
wallets = db.create_resource("wallets", {"owner": "string", "balance": "number|default:0"})
wallets.insert_many([{"id": "ana", "owner": "Ana"}, {"id": "bob", "owner": "Bob"}])
for who, amount in [("ana", 100), ("bob", 40), ("ana", -30), ("bob", 5)]:
    wallets.add(who, amount) if amount > 0 else wallets.sub(who, -amount)
ec.dashboard()
""",
    ),
    (
        "state_machine",
        """\
from s3db_nb.plugins.state_machine import StateMachinePlugin

ORDER = {
    "initial_state": "pending",
    "states": {
        "pending": {"on": {"CONFIRM": "confirmed", "CANCEL": "cancelled"}},
        "confirmed": {"on": {"SHIP": "shipped", "CANCEL": "cancelled"}},
        "shipped": {"on": {"DELIVER": "delivered"}},
        "delivered": {"type": "final"},
        "cancelled": {"type": "final"},
    },
}
db = database("state-machine")
sm = db.use_plugin(StateMachinePlugin(state_machines={"order": ORDER}))
for entity, events in {"o1": ["CONFIRM"], "o2": ["CONFIRM", "SHIP"], "o3": ["CANCEL"], "o4": ["CONFIRM", "SHIP", "DELIVER"]}.items():
    for event in events:
        sm.send("order", entity, event)
sm.dashboard().select("order", "o4")
""",
    ),
    (
        "relation",
        """\
from s3db_nb.plugins.relation import RelationPlugin

db = database("relation")
customers = db.create_resource("customers", {"name": "string"})
orders = db.create_resource("orders", {"customerId": "string", "total": "number"}, partitions={"byCustomer": {"fields": {"customerId": "string"}}})
relation = db.use_plugin(RelationPlugin(relations={
    "customers": {"orders": {"type": "hasMany", "resource": "orders", "foreign_key": "customerId"}},
    "orders": {"customer": {"type": "belongsTo", "resource": "customers", "foreign_key": "customerId"}},
}))
customers.insert_many([{"id": f"c{i}", "name": f"Customer {i}"} for i in range(3)])
orders.insert_many([{"id": f"o{i}", "customerId": f"c{i % 3}", "total": 10.0 * i} for i in range(9)])
orders.list(include=["customer"])
relation.dashboard()
""",
    ),
    (
        "graph",
        """\
from s3db_nb.plugins.graph import GraphPlugin

db = database("graph")
friends = db.create_resource("friends", {"name": "string"})
links = db.create_resource("links", {"source": "string", "target": "string", "label": "string|optional", "weight": "number|optional"})
graph = db.use_plugin(GraphPlugin(vertices="friends", edges="links", directed=False, weighted=True))
friends.insert_many([{"id": n, "name": n.title()} for n in ["ana", "bruno", "carla", "davi", "elena"]])
for source, target, weight in [("ana", "bruno", 1), ("bruno", "carla", 2), ("carla", "davi", 1), ("ana", "elena", 4), ("elena", "davi", 1)]:
    friends.graph.connect(source, target, weight=weight)
graph_view = graph.dashboard()
graph_view.show_path("ana", "davi")
graph_view
""",
    ),
    (
        "tree",
        """\
from s3db_nb.plugins.tree import TreePlugin

db = database("tree")
categories = db.create_resource("categories", {"name": "string"})
tree = db.use_plugin(TreePlugin(resources=["categories"]))
root = categories.tree.create_root({"id": "all", "name": "All"})
for parent, child in [("all", "coffee"), ("all", "tea"), ("coffee", "beans"), ("coffee", "grinders"), ("tea", "matcha")]:
    categories.tree.add_child(parent, {"id": child, "name": child.title()})
tree_view = tree.dashboard()
tree_view.select("beans")
tree_view
""",
    ),
    (
        "ml",
        """\
from s3db_nb.plugins.ml import MLPlugin

db = database("ml")
houses = db.create_resource("houses", {"area": "number", "rooms": "number", "price": "number"})
rng = np.random.default_rng(42)
area = rng.uniform(40, 160, 40).round()
rooms = np.clip((area / 30).round(), 1, None)
houses.insert_frame(pd.DataFrame({"area": area, "rooms": rooms, "price": (2_000 * area + 5_000 * rooms + rng.normal(0, 8_000, 40)).round(-2)}), progress=False)
ml = db.use_plugin(MLPlugin(models={"price": {"type": "regression", "resource": "houses", "features": ["area", "rooms"], "target": "price"}}))
ml.train("price")
ml_view = ml.dashboard()
ml_view.set_model("price")
ml_view
""",
    ),
    (
        "tfstate",
        """\
from s3db_nb.plugins.tfstate import TfStatePlugin

AWS = 'provider["registry.terraform.io/hashicorp/aws"]'


def state(serial, web_servers):
    instances = [{"index_key": i, "schema_version": 1, "attributes": {"id": f"i-{i}", "instance_type": "t3.micro"}} for i in range(web_servers)]
    web = {"mode": "managed", "type": "aws_instance", "name": "web", "provider": AWS, "instances": instances}
    return {"version": 4, "terraform_version": "1.9.0", "serial": serial, "lineage": "shop-infra", "outputs": {}, "resources": [web]}


tf = database("tfstate").use_plugin(TfStatePlugin())
tf.import_state(state(1, web_servers=2))
tf.import_state(state(2, web_servers=3))
tf.dashboard()
""",
    ),
    (
        "tournament",
        """\
from s3db_nb.plugins.tournament import TournamentPlugin

cups = database("tournament").use_plugin(TournamentPlugin())
cup = cups.create("Barista cup", organizer_id="chain", format="single-elimination")["id"]
cups.open_registration(cup)
for seed, shop in enumerate(["Centro", "Pinheiros", "Moema", "Lapa", "Tatuape"], start=1):
    cups.register(cup, shop, seed=seed)
cups.start_tournament(cup)
while pending := cups.get_matches(cup, status="pending"):
    cups.report_result(pending[0]["id"], score1=3, score2=1)
cups.dashboard()
""",
    ),
    (
        "queue_consumer",
        """\
import json

import boto3
from moto import mock_aws
from s3db_nb.plugins.queue_consumer import QueueConsumerPlugin

SQS = mock_aws()  # an in-process SQS (moto) stands in for AWS; stopped in the last cell
SQS.start()
sqs = boto3.client("sqs", region_name="us-east-1")
queue_url = sqs.create_queue(QueueName="orders")["QueueUrl"]
db = database("queue-consumer")
db.create_resource("orders", {"customer": "string", "total": "number"})
bodies = [json.dumps({"resource": "orders", "action": "insert", "data": {"id": f"o{i}", "customer": "ana", "total": 10 * i}}) for i in range(8)]
bodies += ["{not json", json.dumps({"resource": "orders", "action": "explode", "data": {}})]
for body in bodies:
    sqs.send_message(QueueUrl=queue_url, MessageBody=body)
consumers = db.use_plugin(QueueConsumerPlugin(consumers=[{"driver": "sqs", "config": {"queue_url": queue_url, "wait_time_seconds": 0}, "resources": ["orders"]}]))
consumers.join(timeout=30)
consumers.dashboard()
""",
    ),
    (
        "tabs",
        """\
geo_db.dashboard()  # every dashboard of one database, in tabs
""",
    ),
]

TEARDOWN = """\
for db in DATABASES:
    for plugin in list(db.plugins.values()):
        plugin.stop()  # consumer and replicator threads end before their database
    db.disconnect()
if "SQS" in globals():
    SQS.stop()
shutil.rmtree(WORK, ignore_errors=True)
"""


def cells() -> list[str]:
    return [SETUP, *(source for _, source in DASHBOARDS), TEARDOWN]


def notebook() -> dict[str, Any]:
    """The notebook as nbformat v4 JSON: every cell code, no outputs."""
    return {
        "cells": [
            {"cell_type": "code", "execution_count": None, "id": f"cell-{i}", "metadata": {}, "outputs": [], "source": source}
            for i, source in enumerate(cells())
        ],
        "metadata": {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def write(path: Any) -> None:
    path.write_text(json.dumps(notebook(), indent=1, ensure_ascii=False))
