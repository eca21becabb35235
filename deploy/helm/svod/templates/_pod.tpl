{{/*
Pieces shared by the service pods and the migration pods. Each takes
(dict "root" $ "name" "identity").
*/}}

{{/* Environment of a serving container. */}}
{{- define "svod.serveEnv" -}}
{{- $root := .root -}}
{{- $name := .name -}}
{{- $svc := index $root.Values.services $name -}}
{{- $prefix := include "svod.envPrefix" $name -}}
- name: SVOD_SERVICE
  value: {{ $name | quote }}
- name: {{ $prefix }}_PORT
  value: {{ $svc.port | int | toString | quote }}
- name: {{ $prefix }}_METRICS_PORT
  value: {{ ternary ($root.Values.metrics.port | int) 0 $root.Values.metrics.enabled | toString | quote }}
- name: {{ $prefix }}_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "svod.databaseSecretName" $root }}
      key: {{ include "svod.databaseUrlKey" $name }}
{{- range $peer := index $root.Values.calls $name | default list }}
- name: {{ include "svod.envPrefix" $peer }}_TARGET
  value: {{ include "svod.peerTarget" (dict "root" $root "name" $peer) | quote }}
{{- end }}
{{- $drain := sub (sub (int $root.Values.terminationGracePeriodSeconds) (int $root.Values.preStopSleepSeconds)) 5 }}
- name: SVOD_SHUTDOWN_GRACE_S
  value: {{ max 1 $drain | toString | quote }}
{{ include "svod.commonEnv" . }}
{{- with $root.Values.otel }}
{{- if .enabled }}
- name: OTEL_SERVICE_NAME
  value: {{ printf "svod-%s" $name | quote }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .endpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: grpc
- name: OTEL_TRACES_SAMPLER
  value: parentbased_traceidratio
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ .samplerArg | toString | quote }}
- name: SVOD_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: OTEL_RESOURCE_ATTRIBUTES
  {{- $attrs := list "service.namespace=svod" (printf "service.version=%s" (default $root.Chart.AppVersion $root.Values.image.tag)) (printf "k8s.namespace.name=%s" $root.Release.Namespace) "k8s.pod.name=$(SVOD_POD_NAME)" }}
  {{- range $k, $v := .resourceAttributes }}
  {{- $attrs = append $attrs (printf "%s=%v" $k $v) }}
  {{- end }}
  value: {{ join "," $attrs | quote }}
{{- else }}
- name: OTEL_SDK_DISABLED
  value: "true"
{{- end }}
{{- end }}
- name: SVOD_LISTEN_HOST
  value: "0.0.0.0"
- name: SVOD_HASH_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ printf "%s-generated" (include "svod.fullname" $root) }}
      key: hash-secret
{{- if $root.Values.apiKeys.enabled }}
- name: SVOD_API_KEYS_FILE
  value: {{ printf "%s/%s" $root.Values.apiKeys.mountPath $root.Values.apiKeys.keyFileKey | quote }}
- name: SVOD_PEER_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "svod.apiKeysSecretName" $root }}
      key: {{ printf "%s.key" $name | quote }}
{{- end }}
{{- if $root.Values.allowInsecure }}
- name: SVOD_ALLOW_INSECURE
  value: "1"
{{- end }}
{{- if $root.Values.tls.enabled }}
- name: SVOD_TLS_CERT_FILE
  value: {{ printf "%s/%s" $root.Values.tls.mountPath $root.Values.tls.certKey | quote }}
- name: SVOD_TLS_KEY_FILE
  value: {{ printf "%s/%s" $root.Values.tls.mountPath $root.Values.tls.keyKey | quote }}
{{- with $root.Values.tls.caKey }}
- name: SVOD_TLS_CA_FILE
  value: {{ printf "%s/%s" $root.Values.tls.mountPath . | quote }}
{{- end }}
- name: SVOD_HEALTH_PORT
  value: {{ $root.Values.tls.healthPort | int | toString | quote }}
{{- with $root.Values.tls.serverName }}
- name: SVOD_TLS_SERVER_NAME
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- with $root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- with $svc.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Environment both the serving and the migration containers get. */}}
{{- define "svod.commonEnv" -}}
- name: SVOD_LOG_LEVEL
  value: {{ .root.Values.log.level | quote }}
- name: SVOD_LOG_FORMAT
  value: {{ .root.Values.log.format | quote }}
- name: PYTHONUNBUFFERED
  value: "1"
{{- end -}}

{{/* Pod-level settings shared by the Deployments and the migration Jobs. */}}
{{- define "svod.podCommon" -}}
{{- $root := .root -}}
automountServiceAccountToken: {{ $root.Values.serviceAccount.automountToken }}
# Service links would set SVOD_<PEER>_PORT=tcp://... for every Service of the namespace,
# clashing with the SVOD_<NAME>_PORT settings.
enableServiceLinks: false
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
{{- end -}}

{{/* Volumes: an emptyDir for /tmp, the key file and the TLS Secret of a serving pod. */}}
{{- define "svod.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .root.Values.tmpVolume.sizeLimit | quote }}
{{- if and .tls .root.Values.apiKeys.enabled }}
- name: api-keys
  secret:
    secretName: {{ include "svod.apiKeysSecretName" .root | quote }}
    defaultMode: 0440
    items:
      - key: {{ .root.Values.apiKeys.keyFileKey | quote }}
        path: {{ .root.Values.apiKeys.keyFileKey | quote }}
{{- end }}
{{- if and .tls .root.Values.tls.enabled }}
- name: tls
  secret:
    secretName: {{ .root.Values.tls.existingSecret | quote }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{- define "svod.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if and .tls .root.Values.apiKeys.enabled }}
- name: api-keys
  mountPath: {{ .root.Values.apiKeys.mountPath | quote }}
  readOnly: true
{{- end }}
{{- if and .tls .root.Values.tls.enabled }}
- name: tls
  mountPath: {{ .root.Values.tls.mountPath | quote }}
  readOnly: true
{{- end }}
{{- end -}}

{{/*
One probe: (dict "root" $ "name" "identity" "probe" "readiness"). "type: grpc" is kubelet's
native gRPC health check (grpc.health.v1, service ""), which follows the service's database
connectivity; "type: tcp" only checks that the port accepts connections. Kubelet's gRPC probe
speaks plaintext only, so with tls.enabled it asks the plaintext health port (tls.healthPort).
*/}}
{{- define "svod.probe" -}}
{{- $svc := index .root.Values.services .name -}}
{{- $settings := deepCopy (index .root.Values.probes .probe) -}}
{{- $type := $settings.type | default "grpc" -}}
{{- $_ := unset $settings "type" -}}
{{- if eq $type "tcp" -}}
tcpSocket:
  port: grpc
{{- else if .root.Values.tls.enabled -}}
grpc:
  port: {{ .root.Values.tls.healthPort | int }}
  service: ""
{{- else -}}
grpc:
  port: {{ $svc.port | int }}
  service: ""
{{- end }}
{{ toYaml $settings }}
{{- end -}}
