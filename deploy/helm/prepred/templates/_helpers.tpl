{{/* Chart name, overridable. */}}
{{- define "prepred.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Resource-name prefix: <release>-<chart>, or <release> when it already holds the chart name. */}}
{{- define "prepred.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of a component's objects. Call with (dict "root" $ "component" "pred"). */}}
{{- define "prepred.componentName" -}}
{{- printf "%s-%s" (include "prepred.fullname" .root | trunc 58 | trimSuffix "-") .component -}}
{{- end -}}

{{/* Selector labels of a component: stable across upgrades. */}}
{{- define "prepred.selectorLabels" -}}
app.kubernetes.io/name: {{ include "prepred.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* All labels of a component's objects. */}}
{{- define "prepred.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "prepred.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: {{ include "prepred.name" .root }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* image reference from {repository, tag}; an empty tag means the chart's appVersion. Call with (dict "root" $ "image" .Values.pred.image). */}}
{{- define "prepred.image" -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) -}}
{{- end -}}

{{/* gRPC target prep dials: every pred pod through the headless Service's DNS name. */}}
{{- define "prepred.predAddress" -}}
{{- printf "dns:///%s.%s.svc.%s:%d" (include "prepred.componentName" (dict "root" . "component" "pred")) .Release.Namespace .Values.clusterDomain (int .Values.pred.ports.grpc) -}}
{{- end -}}

{{/* Fails the render when autoscaling is on without a CPU request (the HPA target is a share of it). Call with (dict "component" "pred" "values" .Values.pred). */}}
{{- define "prepred.checkAutoscaling" -}}
{{- if and .values.autoscaling.enabled (not (dig "requests" "cpu" "" .values.resources)) -}}
{{- fail (printf "%s.autoscaling.enabled needs %s.resources.requests.cpu: the CPU target is a percentage of the request" .component .component) -}}
{{- end -}}
{{- if gt (int .values.autoscaling.minReplicas) (int .values.autoscaling.maxReplicas) -}}
{{- fail (printf "%s.autoscaling.minReplicas (%d) exceeds maxReplicas (%d)" .component (int .values.autoscaling.minReplicas) (int .values.autoscaling.maxReplicas)) -}}
{{- end -}}
{{- end -}}

{{/* A preStop hook that keeps the container serving while endpoints and DNS drop the pod. Call with the component's values. */}}
{{- define "prepred.preStop" -}}
{{- if gt (int .preStopSleepSeconds) 0 }}
lifecycle:
  preStop:
    exec:
      command: ["sleep", "{{ .preStopSleepSeconds }}"]
{{- end }}
{{- end -}}

{{/* Pod scheduling fields shared by both components. Call with the component's values. */}}
{{- define "prepred.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
