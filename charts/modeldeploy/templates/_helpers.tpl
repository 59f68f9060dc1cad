{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "modeldeploy.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: <release>-<chart>, or the release name when it already holds the chart name. */}}
{{- define "modeldeploy.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "modeldeploy.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "modeldeploy.labels" -}}
helm.sh/chart: {{ include "modeldeploy.chart" . }}
{{ include "modeldeploy.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: modeldeploy
{{- end }}

{{/* Labels that select the operator pod (immutable once installed). */}}
{{- define "modeldeploy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modeldeploy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "modeldeploy.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "modeldeploy.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "modeldeploy.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* kopf's liveness endpoint, as `modeldeploy operator run --liveness` takes it. */}}
{{- define "modeldeploy.livenessURL" -}}
{{- printf "http://0.0.0.0:%d%s" (int .Values.health.port) .Values.health.path }}
{{- end }}

{{/* The generated RBAC rules (files/rbac-rules.yaml): .cluster and .namespaced lists. */}}
{{- define "modeldeploy.rbacRules" -}}
{{- .Files.Get "files/rbac-rules.yaml" }}
{{- end }}

{{/* The joiner's Service host (docs/serving.md, "The joiner"). */}}
{{- define "modeldeploy.joinerName" -}}
{{- printf "%s-joiner" (include "modeldeploy.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "modeldeploy.joinerHost" -}}
{{- printf "%s.%s.svc" (include "modeldeploy.joinerName" .) .Release.Namespace }}
{{- end }}

{{/* Labels of the joiner's objects; its pods are selected by name, instance and component. */}}
{{- define "modeldeploy.joinerSelectorLabels" -}}
app.kubernetes.io/name: {{ include "modeldeploy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: joiner
{{- end }}

{{- define "modeldeploy.joinerLabels" -}}
helm.sh/chart: {{ include "modeldeploy.chart" . }}
{{ include "modeldeploy.joinerSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: modeldeploy
{{- end }}
