# Offline checks of the Kubernetes deployment; included from the root Makefile:
#
#   include deploy/deploy.mk
#
# make deploy-check  - fetch the pinned helm into .tools/, then for every values file in
#                      deploy/helm/ci-values/: helm lint --strict, helm template, and strict
#                      schema validation of the rendered objects (kubernetes-validate)
# make fetch-helm    - only fetch the pinned helm binary (.tools/helm)

DEPLOY_VENV ?= $(if $(VENV),$(VENV),.venv)
DEPLOY_PY ?= $(DEPLOY_VENV)/bin/python

.PHONY: deploy-check fetch-helm

fetch-helm: $(if $(VENV),$(VENV)/.installed)
	$(DEPLOY_PY) deploy/tools/fetch_helm.py

deploy-check: fetch-helm
	$(DEPLOY_PY) deploy/tools/chart_check.py
