{{/* Names, labels and the few fixed ports shared by every template. */}}

{{- define "heatsched.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Object name prefix; also the name of the placement Service, so the extender and webhook URLs use it, and of
the controller's ServiceAccount. */}}
{{- define "heatsched.fullname" -}}
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

{{- define "heatsched.schedulerName" -}}
{{- printf "%s-scheduler" (include "heatsched.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "heatsched.webhookTLSSecret" -}}
{{- printf "%s-webhook-tls" (include "heatsched.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Ports of the placement service; the Service publishes the webhook on 443. The controller's metrics port. */}}
{{- define "heatsched.extenderPort" -}}8888{{- end -}}
{{- define "heatsched.webhookPort" -}}9443{{- end -}}
{{- define "heatsched.metricsPort" -}}8080{{- end -}}

{{- define "heatsched.serviceHost" -}}
{{- printf "%s.%s.svc" (include "heatsched.fullname" .) .Release.Namespace -}}
{{- end -}}

{{- define "heatsched.extenderTLS" -}}
{{- if .Values.scheduler.extender.tls.enabled -}}
{{- if not .Values.webhook.enabled -}}
{{- fail "scheduler.extender.tls.enabled reuses the webhook certificate: it needs webhook.enabled=true" -}}
{{- end -}}
true
{{- end -}}
{{- end -}}

{{- define "heatsched.extenderURL" -}}
{{- $scheme := ternary "https" "http" (eq (include "heatsched.extenderTLS" .) "true") -}}
{{- printf "%s://%s:%s/scheduler" $scheme (include "heatsched.serviceHost" .) (include "heatsched.extenderPort" .) -}}
{{- end -}}

{{- define "heatsched.webhookURL" -}}
{{- printf "https://%s:443" (include "heatsched.serviceHost" .) -}}
{{- end -}}

{{/* Standard labels (https://helm.sh/docs/chart_best_practices/labels/) on every object. */}}
{{- define "heatsched.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "heatsched.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: heatsched
{{- end -}}

{{- define "heatsched.selectorLabels" -}}
app.kubernetes.io/name: {{ include "heatsched.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels and selector labels of one component: include with (dict "root" $ "component" "operator"). */}}
{{- define "heatsched.componentLabels" -}}
{{ include "heatsched.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "heatsched.componentSelectorLabels" -}}
{{ include "heatsched.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "heatsched.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "heatsched.placementName" -}}
{{- printf "%s-placement" (include "heatsched.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "heatsched.controllerLease" -}}
{{- printf "%s-controller" (include "heatsched.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Restricted pod security (https://kubernetes.io/docs/concepts/security/pod-security-standards/). */}}
{{- define "heatsched.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "heatsched.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/*
The heat-aware KubeSchedulerConfiguration: files/heat-aware-scheduler.yaml (a byte-identical copy of
operator/heatsched/data/heat-aware-scheduler.yaml) with only these fields changed:
clientConnection.kubeconfig "" (in-cluster), and on every extender urlPrefix (this release's Service),
weight and httpTimeout (values; their defaults equal the file's).
*/}}
{{- define "heatsched.schedulerConfigObject" -}}
{{- $cfg := .Files.Get "files/heat-aware-scheduler.yaml" | fromYaml -}}
{{- if or (not $cfg) (hasKey $cfg "Error") -}}
{{- fail "files/heat-aware-scheduler.yaml is missing or not valid YAML" -}}
{{- end -}}
{{- $_ := set $cfg.clientConnection "kubeconfig" "" -}}
{{- range $cfg.extenders -}}
{{- $_ := set . "urlPrefix" (include "heatsched.extenderURL" $) -}}
{{- $_ := set . "weight" $.Values.scheduler.extender.weight -}}
{{- $_ := set . "httpTimeout" $.Values.scheduler.extender.httpTimeout -}}
{{- if eq (include "heatsched.extenderTLS" $) "true" -}}
{{- $_ := set . "tlsConfig" (dict "caFile" "/etc/heatsched-ca/ca.crt") -}}
{{- end -}}
{{- end -}}
{{- toJson $cfg -}}
{{- end -}}

{{/*
Webhook TLS data (base64, as in a kubernetes.io/tls Secret) as JSON: the Secret already in the cluster when it
has all three keys (so upgrades keep the certificate), else a new CA and a serving certificate it signs for
the placement Service names.
*/}}
{{- define "heatsched.webhookTLS" -}}
{{- $keys := list "ca.crt" "tls.crt" "tls.key" -}}
{{- $existing := (lookup "v1" "Secret" .Release.Namespace (include "heatsched.webhookTLSSecret" .)).data | default dict -}}
{{- $complete := true -}}
{{- range $keys -}}{{- if not (hasKey $existing .) -}}{{- $complete = false -}}{{- end -}}{{- end -}}
{{- if $complete -}}
{{- pick $existing "ca.crt" "tls.crt" "tls.key" | toJson -}}
{{- else -}}
{{- $svc := include "heatsched.fullname" . -}}
{{- $host := include "heatsched.serviceHost" . -}}
{{- $days := int .Values.webhook.selfSigned.validityDays -}}
{{- $ca := genCA (printf "%s-webhook-ca" $svc) $days -}}
{{- $names := list $svc (printf "%s.%s" $svc .Release.Namespace) $host (printf "%s.cluster.local" $host) -}}
{{- $cert := genSignedCert $host nil $names $days $ca -}}
{{- dict "ca.crt" ($ca.Cert | b64enc) "tls.crt" ($cert.Cert | b64enc) "tls.key" ($cert.Key | b64enc) | toJson -}}
{{- end -}}
{{- end -}}

{{/*
Users whose pods/binding requests skip the residency webhook: kube-scheduler, the heat-aware scheduler's
ServiceAccount (when the chart deploys it) and webhook.trustedBinders. A JSON list.
*/}}
{{- define "heatsched.trustedBinders" -}}
{{- $users := list "system:kube-scheduler" -}}
{{- if .Values.scheduler.enabled -}}
{{- $users = append $users (printf "system:serviceaccount:%s:%s" .Release.Namespace (include "heatsched.schedulerName" .)) -}}
{{- end -}}
{{- concat $users .Values.webhook.trustedBinders | uniq | toJson -}}
{{- end -}}
