# Container image of the litestream command: the static binary of
# `make static` on an empty (scratch) base, with CA certificates for TLS to
# object stores and a non-root user. Build with `make docker` or
#   docker build --build-arg VERSION=v1.2.3 -t litestream-go .
# Run it beside the application with the database directory mounted, e.g.
#   docker run -v /data:/data -v /etc/litestream.yml:/etc/litestream.yml litestream-go replicate
# (the image's user is 65532; give it write access to the database folder,
# or run it with --user of the application).

FROM golang:1.26-bookworm AS build
RUN apt-get update \
	&& apt-get install -y --no-install-recommends gcc libc6-dev make ca-certificates \
	&& rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=development
RUN ./scripts/build-static.sh /out/litestream "${VERSION}" \
	&& echo 'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' > /out/passwd \
	&& echo 'nonroot:x:65532:' > /out/group

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/passwd /etc/passwd
COPY --from=build /out/group /etc/group
COPY --from=build /out/litestream /usr/local/bin/litestream
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/litestream"]
CMD ["replicate"]
