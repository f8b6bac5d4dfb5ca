"""Train and evaluate a scikit-learn model on the Dask cluster.

``make_data`` generates a classification problem (no download) and returns numpy arrays:
they are kept on the cluster, not in the store. ``train`` searches hyper-parameters with
scikit-learn's ``GridSearchCV``, whose fits joblib spreads over the cluster's workers
(joblib's Dask backend on the try's client); ``evaluate`` reports the test accuracy. Needs
the ``updraft[ml]`` and ``updraft[dataframe]`` extras; without them the tasks skip.
"""

from datetime import datetime, timedelta

from updraft import DAG, task

SAMPLES = 4000

# joblib's Dask backend opens a client on each worker it uses; that connection can fail
# on a loaded cluster (distributed's handshake), and a retry is the cure.
with DAG("example_dask_ml", schedule=None, start_date=datetime(2024, 1, 1), catchup=False,
         tags=["example", "dask"], doc_md=__doc__,
         default_args={"retries": 2, "retry_delay": timedelta(seconds=3)}) as dag:

    @task.dask
    def make_data():
        """A generated classification problem, split for training and testing."""
        try:
            from sklearn.datasets import make_classification
            from sklearn.model_selection import train_test_split
        except ImportError as exc:
            from updraft.exceptions import UpdraftSkipException

            raise UpdraftSkipException(f"install updraft[ml] to run this: {exc}")
        features, labels = make_classification(n_samples=SAMPLES, n_features=20,
                                               n_informative=8, random_state=0)
        x_train, x_test, y_train, y_test = train_test_split(features, labels, test_size=0.25,
                                                            random_state=0)
        return {"x_train": x_train, "x_test": x_test, "y_train": y_train, "y_test": y_test}

    @task.dask
    def train(data, client=None):
        """A grid search whose fits run on the cluster (in this process without one)."""
        import pickle

        import joblib
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.model_selection import GridSearchCV

        search = GridSearchCV(RandomForestClassifier(n_estimators=30, random_state=0),
                              {"max_depth": [4, 8], "min_samples_leaf": [1, 5]}, cv=3,
                              n_jobs=-1)
        with joblib.parallel_backend("dask" if client is not None else "threading"):
            search.fit(data["x_train"], data["y_train"])
        print("best parameters:", search.best_params_)
        # The fitted model is bytes: keep it beside the data as a numpy buffer.
        import numpy as np

        return {"model": np.frombuffer(pickle.dumps(search.best_estimator_), dtype=np.uint8),
                "best_params": search.best_params_,
                "cv_accuracy": round(float(search.best_score_), 4)}

    @task.dask
    def evaluate(data, trained):
        """The model's accuracy on the held-out data."""
        import pickle

        from sklearn.metrics import accuracy_score

        model = pickle.loads(trained["model"].tobytes())  # noqa: S301  (made by train above)
        accuracy = accuracy_score(data["y_test"], model.predict(data["x_test"]))
        print(f"test accuracy {accuracy:.3f} with {trained['best_params']}")
        return {"accuracy": round(float(accuracy), 4), "best_params": trained["best_params"]}

    data = make_data()
    evaluate(data, train(data))
