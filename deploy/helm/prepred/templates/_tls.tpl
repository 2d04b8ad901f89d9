{{/* TLS helpers (values .Values.tls). */}}

{{/* Directory the TLS Secret is mounted at, in every container that uses it. */}}
{{- define "prepred.tlsDir" -}}/etc/prepred/tls{{- end -}}

{{/* Name of a component's TLS Secret. Call with (dict "root" $ "component" "pred"). */}}
{{- define "prepred.tlsSecret" -}}
{{- $t := .root.Values.tls -}}
{{- if eq $t.source "certManager" -}}
{{- printf "%s-tls" (include "prepred.componentName" .) -}}
{{- else -}}
{{- index $t.existingSecret .component -}}
{{- end -}}
{{- end -}}

{{/* DNS name of a component's Service: what its certificate must name and what prep checks. */}}
{{- define "prepred.serviceHost" -}}
{{- printf "%s.%s.svc.%s" (include "prepred.componentName" .) .root.Release.Namespace .root.Values.clusterDomain -}}
{{- end -}}

{{/* Fails the render on incomplete TLS values. */}}
{{- define "prepred.checkTLS" -}}
{{- $t := .Values.tls -}}
{{- if $t.enabled -}}
{{- if eq $t.source "existingSecret" -}}
{{- if or (not $t.existingSecret.pred) (not $t.existingSecret.prep) -}}
{{- fail "tls.source=existingSecret needs tls.existingSecret.pred and tls.existingSecret.prep (kubernetes.io/tls Secrets with ca.crt)" -}}
{{- end -}}
{{- else if not $t.certManager.issuerRef.name -}}
{{- fail "tls.source=certManager needs tls.certManager.issuerRef.name" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The TLS Secret's volume of a component. Call with (dict "root" $ "component" "pred"). */}}
{{- define "prepred.tlsVolume" -}}
- name: tls
  secret:
    secretName: {{ include "prepred.tlsSecret" . }}
{{- end -}}

{{/* Its mount; no subPath, so that rotated files reach the container. */}}
{{- define "prepred.tlsVolumeMount" -}}
- name: tls
  mountPath: {{ include "prepred.tlsDir" . }}
  readOnly: true
{{- end -}}

{{/* pred's TLS variables. */}}
{{- define "prepred.predTLSEnv" -}}
{{- $d := include "prepred.tlsDir" . -}}
- name: PRED_TLS_CERT_FILE
  value: {{ $d }}/tls.crt
- name: PRED_TLS_KEY_FILE
  value: {{ $d }}/tls.key
{{- if .Values.tls.mutual }}
- name: PRED_TLS_CLIENT_CA_FILE
  value: {{ $d }}/ca.crt
{{- end }}
{{- end -}}

{{/* prep's TLS variables: its HTTPS, and how it dials pred. */}}
{{- define "prepred.prepTLSEnv" -}}
{{- $d := include "prepred.tlsDir" . -}}
{{- if .Values.tls.prepHTTPS }}
- name: PREP_TLS_CERT_FILE
  value: {{ $d }}/tls.crt
- name: PREP_TLS_KEY_FILE
  value: {{ $d }}/tls.key
{{- end }}
- name: PRED_TLS_CA_FILE
  value: {{ $d }}/ca.crt
{{- if .Values.tls.mutual }}
- name: PRED_TLS_CLIENT_CERT_FILE
  value: {{ $d }}/tls.crt
- name: PRED_TLS_CLIENT_KEY_FILE
  value: {{ $d }}/tls.key
{{- end }}
- name: PRED_TLS_SERVER_NAME
  value: {{ include "prepred.serviceHost" (dict "root" . "component" "pred") }}
{{- end -}}
