// Package containers holds the checks of the container deployment against
// a real Docker engine: the images built from pred/Dockerfile and
// prep/Dockerfile, run with the project's docker-compose.yml.
//
// They are behind the build tag "containers" and need an engine and the
// built images; scripts/test-containers.sh (make test-containers) provides
// both and runs them:
//
//	go test -tags containers ./deploy/containers/
package containers
