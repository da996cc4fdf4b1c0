# smsdispatch: one image for every service (migrate, worker, beat, flower, webhooks, sandbox).
#
# Two stages: the first builds a virtualenv with the project and its `ops` extra (Flower); the
# second copies only that virtualenv onto a clean slim base, so pip's caches, the source tree
# and anything a build needed stay out of the image. Every dependency ships wheels today; if one
# ever needs compiling, install the compiler in the first stage only.

ARG PYTHON_VERSION=3.12

FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/smsdispatch
WORKDIR /src
COPY pyproject.toml README.md celeryconfig.py ./
COPY dispatcher ./dispatcher
COPY tasks ./tasks
RUN /opt/smsdispatch/bin/pip install --no-cache-dir '.[ops]'

FROM python:${PYTHON_VERSION}-slim
# Logs reach `docker compose logs` as they are written.
ENV PATH=/opt/smsdispatch/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY --from=build /opt/smsdispatch /opt/smsdispatch
# A user of its own, without a login shell; its home holds beat's schedule file.
RUN groupadd --system --gid 10001 smsdispatch \
    && useradd --system --uid 10001 --gid smsdispatch --home-dir /var/lib/smsdispatch --create-home \
       --shell /usr/sbin/nologin smsdispatch
USER smsdispatch
WORKDIR /var/lib/smsdispatch
EXPOSE 8080 5555
ENTRYPOINT ["dispatcher"]
CMD ["--help"]
