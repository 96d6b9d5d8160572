{{/* The chart's name. */}}
{{- define "itemq.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The full name of the release's objects. */}}
{{- define "itemq.fullname" -}}
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

{{/* The queue's name (MANAGER_QUEUE), checked: a DNS label of at most 52 characters. */}}
{{- define "itemq.queue" -}}
{{- $q := default .Release.Name .Values.queue -}}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]{0,50}[a-z0-9])?$" $q) -}}
{{- fail (printf "queue %q (default: the release name) must be a DNS label of at most 52 characters: lower-case letters, digits and '-'" $q) -}}
{{- end -}}
{{- $q -}}
{{- end -}}

{{/* The labels that select the manager's pods (Deployment, Service, PDB, NetworkPolicy). */}}
{{- define "itemq.selectorLabels" -}}
app.kubernetes.io/name: {{ include "itemq.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: manager
{{- end -}}

{{/* The labels of the executor Jobs and their pods (besides the manager's own). */}}
{{- define "itemq.jobLabels" -}}
app.kubernetes.io/name: {{ include "itemq.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: executor
app.kubernetes.io/part-of: itemq
{{- end -}}

{{/* app.kubernetes.io/* labels of every object of the chart. */}}
{{- define "itemq.labels" -}}
{{ include "itemq.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: itemq
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "itemq.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "itemq.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "itemq.ambassadorRepository" -}}
{{- if .Values.ambassador.image.repository -}}
{{- .Values.ambassador.image.repository -}}
{{- else if eq .Values.ambassador.kind "custom" -}}
{{- fail "ambassador.kind custom needs ambassador.image.repository" -}}
{{- else -}}
{{- printf "itemq/itemq-%s" .Values.ambassador.kind -}}
{{- end -}}
{{- end -}}

{{/* The data volume's source (a PVC or NFS). */}}
{{- define "itemq.dataVolume" -}}
{{- $d := .Values.dataVolume -}}
- name: data
{{- if $d.existingClaim }}
  persistentVolumeClaim:
    claimName: {{ $d.existingClaim }}
{{- else if $d.nfs }}
  nfs:
    {{- toYaml $d.nfs | nindent 4 }}
{{- else if $d.persistentVolumeClaim.create }}
  persistentVolumeClaim:
    claimName: {{ include "itemq.fullname" . }}-data
{{- else }}
{{- fail "dataVolume.enabled needs dataVolume.existingClaim, dataVolume.nfs or dataVolume.persistentVolumeClaim.create" }}
{{- end }}
{{- end -}}

{{/* The name of a key: value map as env entries (values quoted). */}}
{{- define "itemq.envMap" -}}
{{- range $k, $v := . }}
- name: {{ $k }}
  value: {{ toString $v | quote }}
{{- end }}
{{- end -}}

{{/*
MANAGER_INPUT_ALLOW: manager.inputAllow, or, when it is empty, the
directory or bucket a dir or bucket ambassador sidecar serves (an
in-manager source's location is added by the manager itself).
*/}}
{{- define "itemq.inputAllow" -}}
{{- $m := .Values.manager -}}
{{- $a := .Values.ambassador -}}
{{- if $m.inputAllow -}}
{{- $m.inputAllow -}}
{{- else if and (eq .Values.source.type "ambassador") (eq $a.kind "dir") -}}
{{- $root := default .Values.dataVolume.mountPath (index $a.env "DIR_ROOT") -}}
{{- printf "file://%s/" (trimSuffix "/" $root) -}}
{{- else if and (eq .Values.source.type "ambassador") (eq $a.kind "bucket") (index $a.env "BUCKET_URL") -}}
{{- $parts := splitn "?" 2 (index $a.env "BUCKET_URL") -}}
{{- $prefix := default "" (index $a.env "BUCKET_PREFIX") -}}
{{- $dir := regexReplaceAll "[^/]*$" $prefix "" -}}
{{- $url := printf "%s/%s" (trimSuffix "/" $parts._0) $dir -}}
{{- if $parts._1 -}}{{- $url = printf "%s?%s" $url $parts._1 -}}{{- end -}}
{{- $url -}}
{{- end -}}
{{- end -}}

{{/* MANAGER_FAIR_WEIGHTS from a map of key value → weight: "a=2,b=1" (sorted). */}}
{{- define "itemq.fairWeights" -}}
{{- $out := list -}}
{{- range $k, $v := . -}}
{{- $out = append $out (printf "%s=%v" $k $v) -}}
{{- end -}}
{{- join "," $out -}}
{{- end -}}
