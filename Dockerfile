# One image for every part of the reference system: the binary is the
# command examples/system (module github.com/patbus/patbus/examples/system),
# and docker-compose.yml names the part to run as its command (user,
# account, config, gateway). Build it from the repository's top level:
#
#   docker build -t patbus-system .
#   docker run --rm patbus-system --help

FROM golang:1.26-bookworm AS build
WORKDIR /src
# The modules first, so that a change of the sources does not download
# them again.
COPY go.mod go.sum ./
COPY examples/system/go.mod examples/system/go.sum ./examples/system/
RUN cd examples/system && go mod download
COPY . .
# FerretDB's SQLite is pure Go: a static binary without cgo.
RUN cd examples/system && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/system .

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/system /usr/local/bin/system
USER nonroot
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/system"]
