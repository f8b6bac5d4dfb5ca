"""A dask.dataframe ETL over generated orders: extract, transform, load, report.

Each step runs on the Dask cluster its try runs on (``@task.dask``). The data frames that
pass between the steps stay on the cluster: ``return frame`` persists the frame there and
the XCom row holds only a small reference (its type, shape, partitions and size show on the
task page), so the next step gets the same frame back without a copy through the store.
Needs the ``updraft[dataframe]`` extra (pandas, dask[dataframe], pyarrow); without it the
tasks skip. No network access: the orders are generated.
"""

from datetime import datetime

from updraft import DAG, task

ROWS = 1_000_000
PARTITIONS = 8
REGIONS = ["north", "south", "east", "west"]

with DAG("example_dask_dataframe_etl", schedule=None, start_date=datetime(2024, 1, 1),
         catchup=False, tags=["example", "dask"], doc_md=__doc__) as dag:

    @task.dask
    def extract():
        """Generate the orders, one partition per day (on the cluster's workers)."""
        try:
            import dask.dataframe as dd
            import numpy as np
            import pandas as pd
        except ImportError as exc:
            from updraft.exceptions import UpdraftSkipException

            raise UpdraftSkipException(f"install updraft[dataframe] to run this: {exc}")

        def orders(day):
            rng = np.random.default_rng(day)
            n = ROWS // PARTITIONS
            return pd.DataFrame({
                "order_id": np.arange(day * n, (day + 1) * n),
                "day": day,
                "region": rng.choice(REGIONS, n),
                "amount": rng.normal(50.0, 25.0, n).round(2),
                "discount": rng.choice([0.0, 0.05, 0.1], n),
            })

        return dd.from_map(orders, range(PARTITIONS))

    @task.dask
    def transform(orders):
        """Drop refunds, compute the revenue of each order: still a Dask frame."""
        kept = orders[orders.amount > 0]
        return kept.assign(revenue=(kept.amount * (1 - kept.discount)).round(2))

    @task.dask
    def load(frame):
        """Aggregate by region on the cluster; a small JSON summary comes back."""
        totals = frame.groupby("region").revenue.agg(["sum", "count", "mean"]).compute()
        return {region: {"revenue": round(float(row["sum"]), 2), "orders": int(row["count"]),
                         "average": round(float(row["mean"]), 2)}
                for region, row in totals.sort_index().iterrows()}

    @task
    def report(summary):
        """Print the summary (it is small, so it is an ordinary XCom)."""
        for region, figures in summary.items():
            print(f"{region:>6}: {figures['orders']:>8} orders, revenue {figures['revenue']:>14,.2f}"
                  f" (average {figures['average']:.2f})")
        return sum(figures["orders"] for figures in summary.values())

    report(load(transform(extract())))
