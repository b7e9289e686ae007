{{/* Chart name, truncated to the 63 characters a DNS label allows. */}}
{{- define "parapet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name. The StatefulSet's pods are named <fullname>-<ordinal>
and the headless Service <fullname>-headless, so keep it short enough for both.
*/}}
{{- define "parapet.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "parapet.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "parapet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "parapet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end }}

{{- define "parapet.labels" -}}
helm.sh/chart: {{ include "parapet.chart" . }}
{{ include "parapet.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "parapet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "parapet.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "parapet.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "parapet.policiesConfigMapName" -}}
{{- default (printf "%s-policies" (include "parapet.fullname" .)) .Values.existingPoliciesConfigMap }}
{{- end }}

{{/* Grace period: explicit, or pre-stop sleep + drain deadline + 10 s margin. */}}
{{- define "parapet.terminationGracePeriodSeconds" -}}
{{- if gt (int .Values.terminationGracePeriodSeconds) 0 }}
{{- int .Values.terminationGracePeriodSeconds }}
{{- else }}
{{- add (int .Values.preStopSleepSeconds) (int .Values.drainTimeoutSeconds) 10 }}
{{- end }}
{{- end }}
