{{/*
The operator's permissions (docs/chart.md explains each rule). They follow what `algorun operator` does:

- kopf lists and watches PipelineDeployments, the Algo/DataConnector templates, CRDs (resource discovery),
  every kind the operator creates (to notice drift and status changes) and Secrets (to notice the Kafka
  secrets changing); it patches PipelineDeployments (finalizer, progress annotations) and creates Events.
- The reconciler gets a PipelineDeployment and the Kafka and storage Secrets, lists owned objects by label,
  server-side applies them ("patch", and "create" for a new object), deletes what is no longer desired, and
  patches the status subresource.

Groups:
- "clusterRules": cluster-scoped kinds; always in a ClusterRole (a Role cannot grant them).
- "pipelineRules" + "workloadRules": where pipelines run; a ClusterRole in cluster scope, a Role in the
  watched namespace in namespace scope.
- "kafkaRules": KafkaTopics, KafkaUsers and reading Strimzi's secrets, in kafka.namespace only.

Never granted: "update" or "deletecollection" on anything, nodes, persistent volumes, RBAC, webhooks,
impersonation, escalate/bind, and writes to KafkaTopics/KafkaUsers outside kafka.namespace.
*/}}

{{- define "pipeline-operator.rbac.clusterRules" -}}
# Algo and DataConnector templates: cluster-scoped, read-only.
- apiGroups: ["algo.run"]
  resources: ["algos", "dataconnectors"]
  verbs: ["list", "watch"]
# kopf's resource discovery notices CRDs being installed or removed.
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- if include "pipeline-operator.watchNamespace" . }}
# kopf follows the watched namespaces appearing and disappearing.
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- end }}
{{- include "pipeline-operator.rbac.clusterPeeringRules" . }}
{{- end -}}

{{- define "pipeline-operator.rbac.clusterPeeringRules" -}}
{{- if and (include "pipeline-operator.peering" .) (not (include "pipeline-operator.watchNamespace" .)) }}
# kopf peering between the operator pods (cluster-wide): one is active, the others wait.
- apiGroups: ["kopf.dev"]
  resources: ["clusterkopfpeerings"]
  verbs: ["list", "watch"]
- apiGroups: ["kopf.dev"]
  resources: ["clusterkopfpeerings"]
  resourceNames: [{{ include "pipeline-operator.peeringName" . | quote }}]
  verbs: ["get", "patch"]
{{- end }}
{{- end -}}

{{- define "pipeline-operator.rbac.namespacedPeeringRules" -}}
{{- if and (include "pipeline-operator.peering" .) (include "pipeline-operator.watchNamespace" .) }}
# kopf peering between the operator pods (in the watched namespace): one is active, the others wait.
- apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings"]
  verbs: ["list", "watch"]
- apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings"]
  resourceNames: [{{ include "pipeline-operator.peeringName" . | quote }}]
  verbs: ["get", "patch"]
{{- end }}
{{- end -}}

{{- define "pipeline-operator.rbac.pipelineRules" -}}
# PipelineDeployments: watched; patched by kopf (finalizer, progress annotations).
- apiGroups: ["algo.run"]
  resources: ["pipelinedeployments"]
  verbs: ["get", "list", "watch", "patch"]
# Their status subresource.
- apiGroups: ["algo.run"]
  resources: ["pipelinedeployments/status"]
  verbs: ["patch"]
{{- end -}}

{{- define "pipeline-operator.rbac.workloadRules" -}}
# Events about PipelineDeployments (Applied, Pruned, Degraded, CleanedUp; kopf's warnings).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
# Component configuration and Services.
- apiGroups: [""]
  resources: ["configmaps", "services"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# Secrets: the per-pipeline copies of the Kafka CA and user secrets (written, pruned), the storage secret
# (read), and kopf's watch that notices Strimzi renewing a certificate.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Pod statuses of the components, reported in the PipelineDeployment's status; one pod is read again (get) before
# an exited container's log, to tell whether the kubelet restarted it meanwhile (list already shows as much).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
# The last lines of a failing container's log, put in the status and the Event (only failing pods, rate-bounded).
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
# The components' workloads (the endpoint is a StatefulSet when its write-ahead log is on disk).
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# Data connectors run on Strimzi Kafka Connect next to the pipeline.
- apiGroups: ["kafka.strimzi.io"]
  resources: ["kafkaconnects", "kafkaconnectors"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# KafkaTopics and KafkaUsers are only watched here; they are written in kafka.namespace ("kafkaRules").
- apiGroups: ["kafka.strimzi.io"]
  resources: ["kafkatopics", "kafkausers"]
  verbs: ["list", "watch"]
# Routes to the endpoint: Emissary-ingress Mappings, or Gateway API HTTPRoutes.
- apiGroups: ["getambassador.io"]
  resources: ["mappings"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# The endpoints' serving certificates (endpointTls), issued by cert-manager.
- apiGroups: ["cert-manager.io"]
  resources: ["certificates"]
  verbs: ["list", "watch", "create", "patch", "delete"]
{{- include "pipeline-operator.rbac.namespacedPeeringRules" . }}
{{- with .Values.rbac.podSecurityPolicies }}
# Pod security policies the operator's pods may use (Kubernetes before 1.25).
- apiGroups: ["policy"]
  resources: ["podsecuritypolicies"]
  verbs: ["use"]
  resourceNames:
    {{- toYaml . | nindent 4 }}
{{- end }}
{{- end -}}

{{- define "pipeline-operator.rbac.kafkaRules" -}}
# One KafkaTopic per pipe topic and one KafkaUser per pipeline (mTLS or SCRAM), where Strimzi watches.
- apiGroups: ["kafka.strimzi.io"]
  resources: ["kafkatopics", "kafkausers"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# The cluster CA and user secrets Strimzi writes, read to copy them next to the pipelines.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
{{- end -}}
