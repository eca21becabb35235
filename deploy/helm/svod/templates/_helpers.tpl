{{/*
The five Svod services, in the order they are rendered.
*/}}
{{- define "svod.serviceNames" -}}
ingestion identity profile segmentation quality
{{- end -}}

{{- define "svod.serviceList" -}}
{{- splitList " " (include "svod.serviceNames" .) | toJson -}}
{{- end -}}

{{/*
Base name of every object. Cut to 40 characters so that "<fullname>-segmentation-headless"
and the other derived names stay within the 63 characters of a DNS label.
*/}}
{{- define "svod.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "svod.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "svod.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Name of a service's objects: (dict "root" $ "name" "identity") */}}
{{- define "svod.serviceFullname" -}}
{{- printf "%s-%s" (include "svod.fullname" .root) .name -}}
{{- end -}}

{{/* Selector labels of a component: (dict "root" $ "component" "identity") */}}
{{- define "svod.selectorLabels" -}}
app.kubernetes.io/name: {{ include "svod.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* All labels of a component's objects: (dict "root" $ "component" "identity") */}}
{{- define "svod.labels" -}}
helm.sh/chart: {{ include "svod.chart" .root }}
{{ include "svod.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: svod
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* "SVOD_IDENTITY" for "identity" */}}
{{- define "svod.envPrefix" -}}
{{- printf "SVOD_%s" (upper .) -}}
{{- end -}}

{{- define "svod.image" -}}
{{- $img := .Values.image -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (default .Chart.AppVersion $img.tag | toString) -}}
{{- end -}}
{{- end -}}

{{/*
Shallow merge of two maps, key by key, the second winning; unlike mergeOverwrite it keeps a
false or 0 from the second map. Returns JSON: (dict "base" .Values.autoscaling "override" $x)
*/}}
{{- define "svod.shallowMerge" -}}
{{- $out := dict -}}
{{- range $k, $v := (.base | default dict) }}{{ $_ := set $out $k $v }}{{ end -}}
{{- range $k, $v := (.override | default dict) }}{{ $_ := set $out $k $v }}{{ end -}}
{{- toJson $out -}}
{{- end -}}

{{/* Effective autoscaling settings of a service: (dict "root" $ "name" "identity") */}}
{{- define "svod.autoscaling" -}}
{{- $svc := index .root.Values.services .name -}}
{{- include "svod.shallowMerge" (dict "base" .root.Values.autoscaling "override" $svc.autoscaling) -}}
{{- end -}}

{{/* Effective PodDisruptionBudget settings of a service: (dict "root" $ "name" "identity") */}}
{{- define "svod.pdb" -}}
{{- $svc := index .root.Values.services .name -}}
{{- $base := deepCopy .root.Values.podDisruptionBudget -}}
{{- $over := $svc.podDisruptionBudget | default dict -}}
{{- if or (hasKey $over "minAvailable") (hasKey $over "maxUnavailable") -}}
{{- $_ := unset $base "minAvailable" -}}
{{- $_ := unset $base "maxUnavailable" -}}
{{- end -}}
{{- include "svod.shallowMerge" (dict "base" $base "override" $over) -}}
{{- end -}}

{{/* Name of the Secret holding SVOD_<NAME>_DATABASE_URL for the running services. */}}
{{- define "svod.databaseSecretName" -}}
{{- if .Values.database.existingSecret -}}
{{- .Values.database.existingSecret -}}
{{- else -}}
{{- printf "%s-database" (include "svod.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/*
Name of the Secret the migration Jobs read. A pre-install hook runs before the release's own
objects exist, so unless the Secret already exists (database.existingSecret) the chart renders
a hook copy of it that Helm deletes once every migration has succeeded.
*/}}
{{- define "svod.migrationsSecretName" -}}
{{- if .Values.database.existingSecret -}}
{{- .Values.database.existingSecret -}}
{{- else -}}
{{- printf "%s-migrations-database" (include "svod.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/*
A random value the chart generates once and keeps across upgrades in the Secret
"<fullname>-generated": (dict "root" $ "key" "checksum-salt"). Made once per render and shared
by every template (lookup finds nothing offline: a fresh value each render).
*/}}
{{- define "svod.generated" -}}
{{- $root := .root -}}
{{- $cache := "svodGenerated" -}}
{{- if not (hasKey $root.Values $cache) -}}
{{- $stored := (lookup "v1" "Secret" $root.Release.Namespace (printf "%s-generated" (include "svod.fullname" $root))).data | default dict -}}
{{- $values := dict -}}
{{- range $key := list "checksum-salt" "hash-secret" -}}
{{- with index $stored $key -}}
{{- $_ := set $values $key (b64dec .) -}}
{{- else -}}
{{- $_ := set $values $key (randAlphaNum 43) -}}
{{- end -}}
{{- end -}}
{{- $_ := set $root.Values $cache $values -}}
{{- end -}}
{{- index (index $root.Values $cache) .key -}}
{{- end -}}

{{/* Key of a service's URL in the database Secret: "SVOD_IDENTITY_DATABASE_URL" */}}
{{- define "svod.databaseUrlKey" -}}
{{- printf "%s_DATABASE_URL" (include "svod.envPrefix" .) -}}
{{- end -}}

{{/* Percent-encodes a URL userinfo part (urlquery writes a space as "+"). */}}
{{- define "svod.urlEscape" -}}
{{- urlquery . | replace "+" "%20" -}}
{{- end -}}

{{/* SQLAlchemy URL of a service: (dict "root" $ "name" "identity"); fails when there is none. */}}
{{- define "svod.databaseUrl" -}}
{{- $db := .root.Values.database -}}
{{- $url := index ($db.urls | default dict) .name | default "" -}}
{{- if $url -}}
{{- $url -}}
{{- else if $db.host -}}
{{- $user := index ($db.users | default dict) .name | default dict -}}
{{- if not $user.username -}}
{{- fail (printf "database.users.%s.username is required when database.host is set and database.urls.%s is empty" .name .name) -}}
{{- end -}}
{{- if not $user.password -}}
{{- fail (printf "database.users.%s.password is required when database.host is set and database.urls.%s is empty (or use database.existingSecret)" .name .name) -}}
{{- end -}}
{{- $query := list -}}
{{- range $k, $v := ($db.params | default dict) -}}
{{- $query = append $query (printf "%s=%s" (urlquery $k) (urlquery (toString $v))) -}}
{{- end -}}
{{- printf "%s://%s:%s@%s:%v/%s" $db.driver (include "svod.urlEscape" $user.username) (include "svod.urlEscape" $user.password) $db.host (int $db.port) (default $db.name $user.database) -}}
{{- if $query }}?{{ join "&" $query }}{{ end -}}
{{- else -}}
{{- fail (printf "no database for %s: set database.existingSecret, database.urls.%s or database.host" .name .name) -}}
{{- end -}}
{{- end -}}

{{/* Host:port a caller uses for a peer: (dict "root" $ "name" "identity") */}}
{{- define "svod.peerTarget" -}}
{{- $svc := index .root.Values.services .name -}}
{{- if eq .root.Values.peerDiscovery "headless" -}}
{{- printf "%s-headless:%v" (include "svod.serviceFullname" .) (int $svc.port) -}}
{{- else -}}
{{- printf "%s:%v" (include "svod.serviceFullname" .) (int $svc.port) -}}
{{- end -}}
{{- end -}}

{{/* ServiceAccount of a service's pods: (dict "root" $ "name" "identity") */}}
{{- define "svod.serviceAccountName" -}}
{{- $svc := index .root.Values.services .name -}}
{{- if .root.Values.serviceAccount.create -}}
{{- include "svod.serviceFullname" . -}}
{{- else -}}
{{- default "default" $svc.serviceAccountName -}}
{{- end -}}
{{- end -}}

{{/* Name of the Secret holding the key file and the services' own keys. */}}
{{- define "svod.apiKeysSecretName" -}}
{{- if .Values.apiKeys.existingSecret -}}
{{- .Values.apiKeys.existingSecret -}}
{{- else -}}
{{- printf "%s-api-keys" (include "svod.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/*
Checks across values that values.schema.json cannot express; fails the render with a message
naming the value to fix. Included once, from deployments.yaml.
*/}}
{{- define "svod.validate" -}}
{{- $root := . -}}
{{- range $name := include "svod.serviceList" . | fromJsonArray -}}
{{- $svc := index $root.Values.services $name -}}
{{- $ctx := dict "root" $root "name" $name -}}
{{- $as := include "svod.autoscaling" $ctx | fromJson -}}
{{- if $as.enabled -}}
{{- if gt (int $as.minReplicas) (int $as.maxReplicas) -}}
{{- fail (printf "services.%s: autoscaling.minReplicas (%v) is greater than autoscaling.maxReplicas (%v)" $name $as.minReplicas $as.maxReplicas) -}}
{{- end -}}
{{- if not (and $svc.resources $svc.resources.requests $svc.resources.requests.cpu) -}}
{{- fail (printf "services.%s.resources.requests.cpu is required when autoscaling is enabled (the HPA targets a share of it)" $name) -}}
{{- end -}}
{{- end -}}
{{- $pdb := include "svod.pdb" $ctx | fromJson -}}
{{- if $pdb.enabled -}}
{{- if and (hasKey $pdb "minAvailable") (hasKey $pdb "maxUnavailable") -}}
{{- fail (printf "services.%s: set only one of podDisruptionBudget.minAvailable and podDisruptionBudget.maxUnavailable" $name) -}}
{{- end -}}
{{- if not (or (hasKey $pdb "minAvailable") (hasKey $pdb "maxUnavailable")) -}}
{{- fail (printf "services.%s: podDisruptionBudget needs minAvailable or maxUnavailable" $name) -}}
{{- end -}}
{{- end -}}
{{- range $peer := index $root.Values.calls $name | default list -}}
{{- if eq $peer $name -}}
{{- fail (printf "calls.%s: a service cannot call itself" $name) -}}
{{- end -}}
{{- end -}}
{{- if not $root.Values.database.existingSecret -}}
{{- $_ := include "svod.databaseUrl" $ctx -}}
{{- end -}}
{{- end -}}
{{- if not (or .Values.apiKeys.enabled (and .Values.tls.enabled .Values.tls.caKey) .Values.allowInsecure) -}}
{{- fail "the services would accept anyone's calls: keep apiKeys.enabled (svod keys create), or turn on mutual TLS (tls.enabled with tls.caKey), or set allowInsecure=true if something in front of Svod authenticates every caller" -}}
{{- end -}}
{{- if and .Values.tls.enabled (not .Values.tls.existingSecret) -}}
{{- fail "tls.enabled needs tls.existingSecret (a kubernetes.io/tls Secret)" -}}
{{- end -}}
{{- if and (gt (int .Values.preStopSleepSeconds) 0) (ge (int .Values.preStopSleepSeconds) (int .Values.terminationGracePeriodSeconds)) -}}
{{- fail (printf "preStopSleepSeconds (%v) must be shorter than terminationGracePeriodSeconds (%v): the sleep counts against the grace period" .Values.preStopSleepSeconds .Values.terminationGracePeriodSeconds) -}}
{{- end -}}
{{- if and .Values.otel.enabled (not .Values.otel.endpoint) -}}
{{- fail "otel.enabled needs otel.endpoint (e.g. http://otel-collector.observability:4317)" -}}
{{- end -}}
{{- end -}}

{{/* A NetworkPolicy egress rule from {to: [peers], ports: [ports]}; empty "to" = anywhere. */}}
{{- define "svod.egressRule" -}}
- ports:
    {{- toYaml .ports | nindent 4 }}
  {{- with .to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
