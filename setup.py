"""Maps the repository layout onto import names.

`libs/<pkg>` installs as `<pkg>`; `services/<svc>` installs as `modelog_services.<svc>`, so service
code never shadows a generic top-level name. pyproject.toml cannot express both mappings with
package discovery, hence this file.
"""

from setuptools import find_packages, setup

lib_packages = find_packages("libs")
service_packages = ["modelog_services"] + [f"modelog_services.{p}" for p in find_packages("services")]

setup(
    packages=lib_packages + service_packages,
    package_dir={"": "libs", "modelog_services": "services"},
    package_data={"modelog_services": ["**/*.sql"], "eventlog": ["*.sql"], "modelog_platform": ["*.sql"]},
)
