{{- define "autotune.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "autotune.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "autotune.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "autotune.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (printf "%s-operator" (include "autotune.fullname" .)) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "autotune.tokenSecret" -}}
{{- default (printf "%s-admin-token" (include "autotune.fullname" .)) .Values.existingAdminTokenSecret -}}
{{- end -}}

{{- define "autotune.image" -}}
{{- $img := index .root.Values.image .which -}}
{{- $tag := default .root.Chart.AppVersion $img.tag -}}
{{- /* YAML reads tag: 2 as a number (a float64 from a values file): printf %s would render
       it as %!s(float64=2). A whole number is written as one; any other number may have lost
       its text already (1.10 is read as 1.1), so it must be quoted. */}}
{{- if or (kindIs "float64" $tag) (kindIs "int64" $tag) (kindIs "int" $tag) -}}
{{- if ne (float64 $tag) (floor $tag) -}}
{{- fail (printf "image.%s.tag: %v is read as a number; quote it (tag: \"%v\") so the image tag is the text you wrote" .which $tag $tag) -}}
{{- end -}}
{{- $tag = toString (int64 $tag) -}}
{{- end -}}
{{- if .root.Values.image.registry -}}
{{- printf "%s/%s:%s" .root.Values.image.registry $img.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" $img.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The restricted Pod Security Standard, for every pod and container of the chart. */}}
{{- define "autotune.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "autotune.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- /* A Service's name, <fullname>-<suffix>: a Service name must be a DNS-1035 label (a
       letter first, no dots, at most 63 characters), while a release name may hold dots,
       begin with a digit and be 53 characters long. Such a name becomes
       <fullname with '-' for '.', cut>-<8 hex of its sha256>-<suffix> ('a-' before a digit);
       every other name is unchanged. Call with (dict "root" . "suffix" "tuner-server"). */}}
{{- define "autotune.serviceName" -}}
{{- $full := include "autotune.fullname" .root -}}
{{- $name := printf "%s-%s" $full .suffix -}}
{{- if or (gt (len $name) 63) (not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" $name)) -}}
{{- $base := replace "." "-" $full -}}
{{- if not (regexMatch "^[a-z]" $base) }}{{ $base = printf "a-%s" $base }}{{ end -}}
{{- $base = trunc (int (sub 63 (add (len .suffix) 10))) $base | trimSuffix "-" -}}
{{- $name = printf "%s-%s-%s" $base (sha256sum $full | trunc 8) .suffix -}}
{{- end -}}
{{- $name -}}
{{- end -}}

{{- define "autotune.serverURL" -}}
{{- printf "http://%s.%s.svc:%v" (include "autotune.serviceName" (dict "root" . "suffix" "tuner-server")) .Release.Namespace .Values.tunerServer.port -}}
{{- end -}}

{{- /* Checks a component's extraEnv: a list of EnvVar objects, none naming a variable the
       chart sets itself (`chartEnv`: the chart's env list as rendered with these values) or
       one named before. Kubernetes takes such a list silently and uses the later duplicate,
       so the chart's own setting (and the checks on its value here) would be overridden,
       and a strategic-merge upgrade that drops one duplicate drops both: refused instead,
       naming the variable and the value that sets it (`sources`, YAML: variable -> value).
       Renders nothing. Call with
       (dict "component" "operator" "extra" .Values.operator.extraEnv "chartEnv" ... "sources" ...). */}}
{{- define "autotune.checkExtraEnv" -}}
{{- $where := printf "%s.extraEnv" .component -}}
{{- $extra := .extra | default list -}}
{{- if not (kindIs "slice" $extra) -}}
{{- fail (printf "%s must be a list of EnvVar objects such as [{name: HTTP_PROXY, value: \"http://proxy:3128\"}], not %s" $where (toJson $extra)) -}}
{{- end -}}
{{- $chart := dict -}}
{{- range (fromYamlArray .chartEnv) }}{{ $_ := set $chart .name true }}{{ end -}}
{{- $sources := fromYaml .sources -}}
{{- $seen := dict -}}
{{- range $i, $e := $extra -}}
{{- if not (and (kindIs "map" $e) $e.name (kindIs "string" $e.name)) -}}
{{- fail (printf "%s[%d] must be an EnvVar object, {name: ..., value: ...} or {name: ..., valueFrom: ...}, not %s" $where $i (toJson $e)) -}}
{{- end -}}
{{- if hasKey $chart $e.name -}}
{{- if hasKey $sources $e.name -}}
{{- fail (printf "%s[%d]: %s is set by the chart itself, from %s: set that value instead (Kubernetes would silently keep only one of the two)" $where $i $e.name (index $sources $e.name)) -}}
{{- else -}}
{{- fail (printf "%s[%d]: %s is set by the chart itself, to a value the rest of the chart relies on: leave it out (Kubernetes would silently keep only one of the two)" $where $i $e.name) -}}
{{- end -}}
{{- end -}}
{{- /* YAML reads value: 4 / true / 1.10 as a number or a boolean (1.10 already as 1.1), and
       the API server refuses an EnvVar value that is no string, the whole Deployment with it. */ -}}
{{- if and (hasKey $e "value") (not (kindIs "invalid" $e.value)) (not (kindIs "string" $e.value)) -}}
{{- fail (printf "%s[%d]: %s's value %s is read as a %s, and an environment variable's value is text: quote it (value: \"%s\")" $where $i $e.name (toJson $e.value) (ternary "boolean" "number" (kindIs "bool" $e.value)) (toJson $e.value)) -}}
{{- end -}}
{{- if hasKey $seen $e.name -}}
{{- fail (printf "%s[%d]: %s is named twice (also in %s[%v]); Kubernetes would silently keep only the last" $where $i $e.name $where (index $seen $e.name)) -}}
{{- end -}}
{{- $_ := set $seen $e.name $i -}}
{{- end -}}
{{- end -}}

{{- /* Checks a component's extraEnvFrom, extraVolumes and extraVolumeMounts: each a list of
       objects. A mapping (an entry written without its '-') broke the rendered YAML with an
       error naming no value, or rendered an envFrom object the API server refuses. Renders
       nothing. Call with (dict "component" "operator" "values" .Values.operator). */}}
{{- define "autotune.checkExtraLists" -}}
{{- $what := dict "extraEnvFrom" "envFrom sources ({configMapRef: {name: ...}} or {secretRef: {name: ...}})" "extraVolumes" "Volume objects" "extraVolumeMounts" "VolumeMount objects" -}}
{{- range $key := list "extraEnvFrom" "extraVolumes" "extraVolumeMounts" -}}
{{- $v := index $.values $key -}}
{{- if $v -}}
{{- if not (kindIs "slice" $v) -}}
{{- fail (printf "%s.%s must be a list of %s, not %s" $.component $key (index $what $key) (toJson $v)) -}}
{{- end -}}
{{- range $i, $e := $v -}}
{{- if not (kindIs "map" $e) -}}
{{- fail (printf "%s.%s[%d] must be an object, not %s" $.component $key $i (toJson $e)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
