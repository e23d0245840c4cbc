{{- define "tollgate.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}{{ .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}{{ end }}
{{- end }}

{{/* Selector labels never carry the chart version: selectors are immutable. */}}
{{- define "tollgate.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tollgate.labels" -}}
{{ include "tollgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* image: (dict "root" $ "name" "gateway") */}}
{{- define "tollgate.image" -}}
{{ printf "%s/%s:%s" .root.Values.image.repository .name (.root.Values.image.tag | default .root.Chart.AppVersion) }}
{{- end }}

{{- define "tollgate.authSecret" -}}
{{ .Values.auth.existingSecret | default (printf "%s-auth" (include "tollgate.fullname" .)) }}
{{- end }}

{{- define "tollgate.redisSecret" -}}
{{ .Values.redis.existingSecret | default (printf "%s-redis" (include "tollgate.fullname" .)) }}
{{- end }}

{{/* Env shared by every service: (dict "root" $ "prefix" "TOLLGATE_GATEWAY_") */}}
{{- define "tollgate.commonEnv" -}}
- name: {{ .prefix }}REDIS_URL
  valueFrom: {secretKeyRef: {name: {{ include "tollgate.redisSecret" .root }}, key: url}}
- name: {{ .prefix }}LOG_LEVEL
  value: {{ .root.Values.log.level | quote }}
- name: {{ .prefix }}LOG_JSON
  value: {{ .root.Values.log.json | quote }}
{{- end }}

{{/* The ledger's settings (values `ledger:`), the same for auth and the gateway; the key pepper
only where the ledger script runs with it (`pepper`: auth always, the gateway in redis mode). */}}
{{- define "tollgate.ledgerEnv" -}}
{{- $l := .root.Values.ledger }}
- name: {{ .prefix }}CREDITS_LOW_THRESHOLD
  value: {{ $l.creditsLowThreshold | quote }}
- name: {{ .prefix }}INVALID_KEY_BURST
  value: {{ $l.invalidKeyBurst | quote }}
- name: {{ .prefix }}INVALID_KEY_WINDOW_SECONDS
  value: {{ $l.invalidKeyWindowSeconds | quote }}
- name: {{ .prefix }}CHARGE_TTL_SECONDS
  value: {{ $l.chargeTtlSeconds | quote }}
- name: {{ .prefix }}USAGE_RETENTION_DAYS
  value: {{ $l.usageRetentionDays | quote }}
{{- if .pepper }}
- name: {{ .prefix }}KEY_PEPPER
  valueFrom: {secretKeyRef: {name: {{ include "tollgate.authSecret" .root }}, key: key-pepper, optional: true}}
{{- end }}
{{- end }}

{{- define "tollgate.extraEnv" -}}
{{- range $k, $v := .settings }}
- name: {{ printf "%s%s" $.prefix $k }}
  value: {{ $v | quote }}
{{- end }}
{{- end }}

{{- define "tollgate.podDefaults" -}}
securityContext: {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity: {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Checksums for the pods that read a generated Secret: of the values that choose its content, never
of the generated content itself. Rendering the Secret for a checksum draws new random values on
install (lookup finds nothing yet), so the first upgrade would see a "changed" Secret and restart
Redis under its clients. The generated values never change after install anyway.
*/}}
{{- define "tollgate.redisSecretChecksum" -}}
{{ list .Values.redis.enabled .Values.redis.externalUrl .Values.redis.existingSecret | toJson | sha256sum }}
{{- end }}
{{- define "tollgate.authSecretChecksum" -}}
{{ list .Values.auth.existingSecret | toJson | sha256sum }}
{{- end }}
