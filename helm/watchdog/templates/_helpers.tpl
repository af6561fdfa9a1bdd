{{/* Chart name, truncated to the 63 characters DNS labels allow. */}}
{{- define "watchdog.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name; also the Prometheus job name the ServiceMonitor produces. */}}
{{- define "watchdog.fullname" -}}
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

{{- define "watchdog.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "watchdog.selectorLabels" -}}
app.kubernetes.io/name: {{ include "watchdog.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "watchdog.labels" -}}
helm.sh/chart: {{ include "watchdog.chart" . }}
{{ include "watchdog.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: rollback-watchdog
{{- end }}

{{- define "watchdog.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "watchdog.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* HA mode without the PostgreSQL Secret would be N replicas each leading on its own. */}}
{{- define "watchdog.haStoreSecret" -}}
{{- if not .Values.ha.store.existingSecret }}
{{- fail (printf "ha.enabled needs ha.store.existingSecret: the name of a Secret holding the PostgreSQL DSN (postgresql://...) under the key %q (ha.store.key). Without it every replica would keep its own state and page and roll back on its own." .Values.ha.store.key) }}
{{- end }}
{{- .Values.ha.store.existingSecret }}
{{- end }}

{{- define "watchdog.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
Where the rule packs are mounted: rules.includeDefault's default.yaml first (the pack that
sets the flowchart parameters), then rules.files in name order.
*/}}
{{- define "watchdog.rulePacks" -}}
{{- $packs := list }}
{{- if .Values.rules.includeDefault }}
{{- $packs = append $packs "/etc/watchdog/rules/default.yaml" }}
{{- end }}
{{- range $name, $_ := .Values.rules.files }}
{{- $packs = append $packs (printf "/etc/watchdog/rules/%s" $name) }}
{{- end }}
{{- toJson $packs }}
{{- end }}

{{/*
The daemon's config file: the `config` value plus the keys the chart owns, because only the
chart knows what it mounts and how many replicas run:
- `rules`: every mounted pack (the daemon merges them; duplicate rule names are an error);
- `leader.required: true` in HA mode: a replica refuses to start unless the store is the
  shared PostgreSQL (WATCHDOG_STORE__URL), instead of leading alone on its own SQLite file.
*/}}
{{- define "watchdog.config" -}}
{{- $config := deepCopy .Values.config }}
{{- $packs := include "watchdog.rulePacks" . | fromJsonArray }}
{{- if hasKey $config "rules" }}
{{- fail "config.rules: the chart sets it to the packs it mounts under /etc/watchdog/rules (rules.includeDefault, rules.files); remove config.rules and put extra packs in rules.files" }}
{{- end }}
{{- if $packs }}
{{- $_ := set $config "rules" $packs }}
{{- end }}
{{- if .Values.ha.enabled }}
{{- $leader := deepCopy (default dict (get $config "leader")) }}
{{- $_ := set $leader "required" true }}
{{- $_ := set $config "leader" $leader }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/*
The pod template shared by the StatefulSet (SQLite) and the Deployment (HA). The
checksum/config annotation changes whenever config or rules change, so pods restart and
pick them up (the daemon reads both at start).
*/}}
{{- define "watchdog.podTemplate" -}}
metadata:
  labels:
    {{- include "watchdog.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "watchdog.serviceAccountName" . }}
  # the daemon calls no Kubernetes API; leader election goes through PostgreSQL
  automountServiceAccountToken: false
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  containers:
    - name: watchdog
      image: {{ include "watchdog.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args: ["run", "--config", "/etc/watchdog/config.yaml"]
      ports:
        - name: http
          containerPort: {{ .Values.port }}
          protocol: TCP
      env:
        - name: HEALTHCHECK_URL
          value: {{ printf "http://127.0.0.1:%v/healthz" .Values.port | quote }}
        {{- if .Values.ha.enabled }}
        # the settings loader nests with "__": store.url
        - name: WATCHDOG_STORE__URL
          valueFrom:
            secretKeyRef:
              name: {{ include "watchdog.haStoreSecret" . }}
              key: {{ .Values.ha.store.key }}
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      {{- with .Values.startupProbe }}
      startupProbe:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.livenessProbe }}
      livenessProbe:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.readinessProbe }}
      readinessProbe:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/watchdog
          readOnly: true
        - name: data
          mountPath: /var/lib/watchdog
        - name: tmp
          mountPath: /tmp
        {{- if .Values.secrets.existingSecret }}
        - name: secrets
          mountPath: /run/secrets/watchdog
          readOnly: true
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "watchdog.fullname" . }}
        items:
          - key: config.yaml
            path: config.yaml
          {{- if .Values.rules.includeDefault }}
          - key: rules-default.yaml
            path: rules/default.yaml
          {{- end }}
          {{- range $name, $_ := .Values.rules.files }}
          - key: rules-{{ $name }}
            path: rules/{{ $name }}
          {{- end }}
    - name: tmp
      emptyDir:
        medium: Memory
        sizeLimit: {{ .Values.tmpSizeLimit }}
    {{- if or .Values.ha.enabled (not .Values.persistence.enabled) }}
    # HA keeps state in PostgreSQL; without persistence SQLite state dies with the pod
    - name: data
      emptyDir: {}
    {{- end }}
    {{- if .Values.secrets.existingSecret }}
    - name: secrets
      secret:
        secretName: {{ .Values.secrets.existingSecret }}
        defaultMode: 288  # 0440: owner root, group fsGroup may read
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
