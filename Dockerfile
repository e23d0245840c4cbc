# One image recipe for every service: `docker build --build-arg SERVICE=gateway -t tollgate/gateway .`
# (make images builds all of them). The build context is the repository root.
#
# Two phases (astral-sh/uv docs, "Using uv in Docker"): the third-party dependencies from the
# lockfile first, in a layer keyed only by the lockfile and the pyproject files, then the
# workspace's own sources; a code change reuses the dependency layer.
#
# BASE is any Debian-like image with Python >= 3.11 and pip: python:3.11-slim for users; a base
# made from a Debian rootfs where no registry is reachable (hack/images.sh --local-base).
# No `# syntax=` line: the classic builder (no registry for BuildKit's frontend) must read it too.
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
ARG SERVICE
ARG UV_VERSION=0.13.9
RUN test -n "$SERVICE" || { echo "--build-arg SERVICE=gateway|auth|notifier|operator|testkit" >&2; exit 1; } \
 && pip install --no-cache-dir "uv==${UV_VERSION}"
WORKDIR /src
ENV UV_LINK_MODE=copy UV_COMPILE_BYTECODE=1 UV_PYTHON_DOWNLOADS=never UV_NO_CACHE=1
COPY pyproject.toml uv.lock ./
COPY libs/common/pyproject.toml libs/common/
COPY libs/testkit/pyproject.toml libs/testkit/
COPY services/gateway/pyproject.toml services/gateway/
COPY services/auth/pyproject.toml services/auth/
COPY services/notifier/pyproject.toml services/notifier/
COPY services/operator/pyproject.toml services/operator/
RUN uv sync --frozen --no-dev --no-install-workspace --package "tollgate-${SERVICE}"
COPY libs ./libs
COPY services ./services
RUN uv sync --frozen --no-dev --no-editable --package "tollgate-${SERVICE}"

FROM ${BASE}
ARG SERVICE
# Non-root, read-only root filesystem friendly: no bytecode writes at run time, /tmp is a volume.
ENV PATH=/src/.venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    TOLLGATE_SERVICE_MODULE=tollgate_${SERVICE}
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin tollgate
COPY --from=build /src/.venv /src/.venv
USER 10001
# The exec form cannot expand a build argument; the shell only picks the module and is replaced.
ENTRYPOINT ["/bin/sh", "-c", "exec python -m \"$TOLLGATE_SERVICE_MODULE\" \"$@\"", "--"]
