"""MLflow's REST API (`/api/2.0/mlflow/`, `/ajax-api/2.0/mlflow/`), translated to our gRPC calls.

Wire facts followed here are those of the stock client (mlflow/utils/rest_utils.py): GET fields come
as query parameters (repeated keys for lists), every other method as a JSON body; errors are
`{"error_code", "message"}` with MLflow's status codes.
"""
