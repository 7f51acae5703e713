# hocvuso: build wheels in one stage, run from a small image as a non-root user.
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot bot
COPY handlers handlers
COPY content content
COPY scheduler scheduler
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.12-slim
RUN useradd --create-home --uid 10001 hocvuso
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER hocvuso
WORKDIR /home/hocvuso
ENV HOCVUSO_DATABASE_URL=sqlite+aiosqlite:////home/hocvuso/data/hocvuso.db \
    HOCVUSO_WEB_HOST=0.0.0.0 \
    PYTHONUNBUFFERED=1
# The shipped content and the message catalogs must check at build time.
RUN hocvuso content check \
 && python -c "from bot.i18n import translations as t; assert t('vi').gettext('I agree') != 'I agree'"
VOLUME ["/home/hocvuso/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz').status != 200)"
CMD ["hocvuso", "serve"]
