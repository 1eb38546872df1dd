{{/*
The chart's name: nameOverride or the chart name, truncated to 63 characters (a DNS label).
*/}}
{{- define "pipeline-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The fully qualified name of the operator's objects: fullnameOverride; else the release name when it contains
"algorun-pipeline-operator" (so `helm install algorun-pipeline-operator ...` names things
"algorun-pipeline-operator"); else "<release>-<name>". Truncated to 63 characters.
*/}}
{{- define "pipeline-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains "algorun-pipeline-operator" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "pipeline-operator.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "pipeline-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Labels of every object of the chart.
*/}}
{{- define "pipeline-operator.labels" -}}
helm.sh/chart: {{ include "pipeline-operator.chart" . }}
{{ include "pipeline-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: algo.run
{{- end -}}

{{/*
Selector labels of the operator's pods.
*/}}
{{- define "pipeline-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pipeline-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
The ServiceAccount the operator runs as.
*/}}
{{- define "pipeline-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "pipeline-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
The name of the RBAC objects: rbac.nameOverride, else the full name (which holds the release name).
*/}}
{{- define "pipeline-operator.rbacName" -}}
{{- default (include "pipeline-operator.fullname" .) .Values.rbac.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The namespace the operator watches: scope.watchNamespace; with scope.type "namespace" an empty value means the
release namespace. Empty (cluster scope) means every namespace.
*/}}
{{- define "pipeline-operator.watchNamespace" -}}
{{- if eq .Values.scope.type "namespace" -}}
{{- default .Release.Namespace .Values.scope.watchNamespace -}}
{{- else -}}
{{- .Values.scope.watchNamespace -}}
{{- end -}}
{{- end -}}

{{/*
An image reference "repository:tag", the tag defaulting to the chart's appVersion.
Call with (dict "image" .Values.someImage "root" .).
*/}}
{{- define "pipeline-operator.image" -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion (toString (default "" .image.tag))) -}}
{{- end -}}

{{/*
Whether the Kafka auth type is one of the supported ones.
*/}}
{{- define "pipeline-operator.validate" -}}
{{- $auth := default "" .Values.kafka.auth.type -}}
{{- if not (has $auth (list "" "tls" "scram-sha-512" "plain")) -}}
{{- fail (printf "kafka.auth.type must be \"\", \"tls\", \"scram-sha-512\" or \"plain\", not %q" $auth) -}}
{{- end -}}
{{- if not (has .Values.scope.type (list "cluster" "namespace")) -}}
{{- fail (printf "scope.type must be \"cluster\" or \"namespace\", not %q" .Values.scope.type) -}}
{{- end -}}
{{- if and .Values.notifications.enabled (not .Values.notifications.url) -}}
{{- fail "notifications.url is required when notifications.enabled is true" -}}
{{- end -}}
{{- end -}}

{{/*
The common ServiceMonitor. Call with (dict "root" . "key" "algoServiceMonitor" "suffix" "algo" "selector"
(dict ...) "port" "metrics" "namespaces" (list ...)). "namespaces" empty means any namespace.
*/}}
{{- define "pipeline-operator.serviceMonitor" -}}
{{- $root := .root -}}
{{- $sm := index $root.Values.metrics .key -}}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ printf "%s-%s" (include "pipeline-operator.fullname" $root | trunc (int (sub 62 (len .suffix))) | trimSuffix "-") .suffix }}
  namespace: {{ $sm.namespace | default $root.Values.metrics.serviceMonitorNamespace | default $root.Release.Namespace }}
  labels:
    {{- include "pipeline-operator.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .suffix }}-metrics
    {{- with $sm.release }}
    release: {{ . | quote }}
    {{- end }}
    {{- with $sm.additionalLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  jobLabel: app.kubernetes.io/component
  selector:
    matchLabels:
      {{- toYaml .selector | nindent 6 }}
  namespaceSelector:
    {{- if .namespaces }}
    matchNames:
      {{- toYaml .namespaces | nindent 6 }}
    {{- else }}
    any: true
    {{- end }}
  endpoints:
    - port: {{ .port }}
      path: /metrics
      {{- with $sm.interval }}
      interval: {{ . }}
      {{- end }}
      {{- with $sm.scrapeTimeout }}
      scrapeTimeout: {{ . }}
      {{- end }}
      honorLabels: {{ $sm.honorLabels }}
      {{- with $sm.relabellings }}
      metricRelabelings:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end -}}

{{/*
Whether several operator pods may run: then they use kopf peering (one active, the others paused), else the
single pod runs standalone.
*/}}
{{- define "pipeline-operator.peering" -}}
{{- if or .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1) -}}true{{- end -}}
{{- end -}}

{{/*
The kopf peering object's name.
*/}}
{{- define "pipeline-operator.peeringName" -}}
{{- include "pipeline-operator.fullname" . -}}
{{- end -}}
