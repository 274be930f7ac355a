{{/* The release's full name, at most 63 characters. */}}
{{- define "yunshu.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "yunshu.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "yunshu.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: yunshu
{{- end -}}

{{/* Labels selecting the pods. */}}
{{- define "yunshu.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "yunshu.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "yunshu.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "yunshu.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Refuses value combinations that cannot work. */}}
{{- define "yunshu.validate" -}}
{{- if not (has .Values.store.type (list "embedded" "etcd")) -}}
{{- fail (printf "store.type must be embedded or etcd, not %q" .Values.store.type) -}}
{{- end -}}
{{- if and (eq .Values.store.type "embedded") (gt (int .Values.replicas) 1) -}}
{{- fail "the embedded store serves one replica: set replicas to 1 or store.type to etcd" -}}
{{- end -}}
{{- if and (eq .Values.store.type "etcd") (empty .Values.store.etcd.endpoints) -}}
{{- fail "store.etcd.endpoints is empty" -}}
{{- end -}}
{{- if and (eq .Values.store.type "etcd") (empty .Values.masterKeys.secretName) -}}
{{- fail "store.type etcd needs masterKeys.secretName: every replica must seal secrets with the same master keys" -}}
{{- end -}}
{{- if and .Values.tls.enabled (empty .Values.tls.secretName) -}}
{{- fail "tls.enabled needs tls.secretName" -}}
{{- end -}}
{{- end -}}
