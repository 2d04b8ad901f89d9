// Package deploy holds the checks of the repository's deployment assets:
// the Compose files, the Dockerfiles, the Helm chart in helm/prepred and the
// KServe example in kserve. Its tests load each asset the way its tool does
// (compose-go for Compose, helm lint/template for the chart, strict typed
// decoding for every Kubernetes object) and assert what the services rely
// on: scalable pred replicas, health checks that gate start-up, non-root
// containers, probes on the right ports and autoscalers aimed at the right
// deployments.
//
// The health probe that both images carry lives in cmd/healthcheck.
package deploy
