// Package containers holds the checks of the container deployments: the
// images built from pred/Dockerfile and prep/Dockerfile, run with the
// project's docker-compose.yml on a real Docker engine, and installed with
// the Helm chart deploy/helm/prepred on a real Kubernetes cluster.
//
// The Compose checks are behind the build tag "containers" and need an
// engine and the built images; scripts/test-containers.sh (make
// test-containers) provides both and runs them:
//
//	go test -tags containers ./deploy/containers/
//
// The Kubernetes checks are behind the build tag "k8s" and need a cluster
// with the images imported; scripts/test-k8s.sh (make test-k8s) starts the
// one-node cluster of scripts/k8s-up.sh, imports them and runs them:
//
//	go test -tags k8s -run TestKubernetes ./deploy/containers/
package containers
