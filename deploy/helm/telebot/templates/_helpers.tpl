{{/* Chart name, overridable with nameOverride. */}}
{{- define "telebot.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name (release-chart, or the release name when it contains the chart name). */}}
{{- define "telebot.fullname" -}}
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

{{- define "telebot.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "telebot.selectorLabels" -}}
app.kubernetes.io/name: {{ include "telebot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "telebot.labels" -}}
helm.sh/chart: {{ include "telebot.chart" . }}
{{ include "telebot.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
One TOML value: strings quoted, booleans as they are, whole numbers without a decimal
point or exponent (Helm reads YAML numbers as float64), lists as arrays of quoted strings.
*/}}
{{- define "telebot.tomlValue" -}}
{{- $v := . -}}
{{- if kindIs "string" $v -}}
{{- $v | quote -}}
{{- else if kindIs "bool" $v -}}
{{- $v -}}
{{- else if or (kindIs "float64" $v) (kindIs "float32" $v) -}}
{{- if eq (float64 $v) (floor $v) -}}{{ int64 $v }}{{- else -}}{{ $v }}{{- end -}}
{{- else if or (kindIs "int" $v) (kindIs "int64" $v) -}}
{{- $v -}}
{{- else if kindIs "slice" $v -}}
[{{- range $i, $e := $v -}}{{- if $i }}, {{ end -}}{{- include "telebot.tomlListItem" $e -}}{{- end -}}]
{{- else if kindIs "invalid" $v -}}
""
{{- else -}}
{{- $v | toString | quote -}}
{{- end -}}
{{- end }}

{{/* One list element as a quoted TOML string (whole numbers such as chat ids without exponent). */}}
{{- define "telebot.tomlListItem" -}}
{{- if and (or (kindIs "float64" .) (kindIs "float32" .)) (eq (float64 .) (floor .)) -}}
{{- int64 . | toString | quote -}}
{{- else -}}
{{- . | toString | quote -}}
{{- end -}}
{{- end }}

{{/* The config.toml file rendered from .Values.config: one [section] per key. */}}
{{- define "telebot.configToml" -}}
# Rendered by the telebot Helm chart from .Values.config. Secret keys come from
# environment variables (see .Values.existingSecret).
{{- range $section, $keys := .Values.config }}

[{{ $section }}]
{{- range $key, $value := $keys }}
{{ $key }} = {{ include "telebot.tomlValue" $value }}
{{- end }}
{{- end }}
{{- end }}
