{{/* Chart name, overridable. */}}
{{- define "tandem-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects. */}}
{{- define "tandem-operator.fullname" -}}
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

{{/* Labels that select the operator pods. */}}
{{- define "tandem-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tandem-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every object of the release. */}}
{{- define "tandem-operator.labels" -}}
{{ include "tandem-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tandem
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The operator's ServiceAccount. */}}
{{- define "tandem-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tandem-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* An image reference from {repository, tag, digest}: by digest when one is given. */}}
{{- define "tandem-operator.imageRef" -}}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository (default .appVersion .image.tag) }}
{{- end }}
{{- end }}

{{/* Operator image. */}}
{{- define "tandem-operator.image" -}}
{{- include "tandem-operator.imageRef" (dict "image" .Values.image "appVersion" .Chart.AppVersion) }}
{{- end }}

{{/* Server image the operator deploys by default. */}}
{{- define "tandem-operator.serverImage" -}}
{{- include "tandem-operator.imageRef" (dict "image" .Values.serverImage "appVersion" .Chart.AppVersion) }}
{{- end }}

{{/* Name of the leader election Lease. */}}
{{- define "tandem-operator.leaseName" -}}
{{- include "tandem-operator.fullname" . }}
{{- end }}

{{/* Namespaces whose database pods get a NetworkPolicy, as a JSON list. */}}
{{- define "tandem-operator.databaseNamespaces" -}}
{{- if .Values.networkPolicy.databaseNamespaces }}
{{- .Values.networkPolicy.databaseNamespaces | uniq | toJson }}
{{- else }}
{{- list (default .Release.Namespace .Values.watchNamespace) | toJson }}
{{- end }}
{{- end }}

{{/*
Rules for what the operator does in the namespaces it watches. api_calls::API_CALLS in the
operator crate lists every call; tests/test_chart.py checks these rules grant each one.
*/}}
{{- define "tandem-operator.watchRules" -}}
- apiGroups: ["tandem.dev"]
  resources: ["redisreplicasets"]
  verbs: ["list", "watch"]
- apiGroups: ["tandem.dev"]
  resources: ["redisreplicasets/status"]
  verbs: ["patch"]
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["services", "configmaps"]
  verbs: ["list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch", "patch", "delete"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
