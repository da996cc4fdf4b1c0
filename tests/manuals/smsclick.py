"""SMSClick's manual (seeds/002): its sample key and texts, and its replies word for word."""

from __future__ import annotations

APIKEY = "1EgdzRnSFX83mPh2WK7yTIyJTUZPVmA6puXwU4GK"  # the manual's sample key
TELEFONO = "5526632636"  #: the PHP example's number
TEXT = "Prueba de envio desde la API"
PROMO = "Felicidades: Responde SI para usar tus puntos en tu compra"
SEND, GET, REPORT, CREDITS = (f"/sms-services/{name}.json" for name in ("sendMsg", "getMsg", "report", "credits"))
RANGE = {"FECHA_INICIO": "01-01-2018 00:00:00", "FECHA_FIN": "30-03-2018 23:59:59"}

# The manual's replies to sendMsg.json.
SENT = '{"codigo":1, "descripcion":"Mensaje enviado", "id_mensaje":123, "creditosUsados":1}'
SEND_ERRORS = {
    "-100": '{"codigo": -100, "descripcion":"Parámetro APIKEY no definido"}',
    "-101": '{"codigo": -101, "descripcion":"APIKEY incorrecta"}',
    "-102": '{"codigo": -102, "descripcion":"Parametro TELEFONO no valido"}',
    "-103": '{"codigo": -103, "descripcion":"Parametro MENSAJE vacio"}',
    "-104": '{"codigo": -104, "descripcion":"Saldo insuficiente"}',
    "-105": '{"codigo": -105, "descripcion":"El valor ID_REGLA_INTERACTIVA no existe"}',
}

# The manual's replies to the queries.
GOT = (
    '{"codigo":1, "descripcion":"ok", "estatus_mensaje":1, "telefono":5554542570, '
    '"mensaje":"Felicidades: Responde SI para usar tus puntos en tu compra", '
    '"fecha_envio":"12-08-2017 17:34:56", "respuesta":"Si", "fecha_respuesta":"12-08-2017 17:40:41"}'
)
NULLS = '"estatus_mensaje":null, "fecha_recepcion":null, "respuesta":null}'
GET_ERRORS = {
    "-100": '{"codigo":-100, "descripcion":"Apikey no definida", ' + NULLS,
    "-101": '{"codigo":-101, "descripcion":"Apikey incorrecta", ' + NULLS,
    "-200": '{"codigo":-200, "descripcion":"Identificador de mensaje no válido", ' + NULLS,
    "-201": '{"codigo":-201, "descripcion":"Identificador de mensaje no existe", ' + NULLS,
}
REPORT_ERRORS = {
    "-100": '{"codigo":-100, "descripcion":"Apikey no definida", "mensajes":null}',
    "-101": '{"codigo":-101, "descripcion":"Apikey incorrecta", "mensajes":null}',
    "-300": '{"codigo":-300, "descripcion":"Parametro FECHA_INICIO vacío o formato incorrecto", "mensajes":null}',
    "-301": '{"codigo":-301, "descripcion":"Parametro FECHA_FIN vacío formato incorrecto", "mensajes":null}',
    "-302": '{"codigo":-302, "descripcion":"Parametro ESTATUS_MENSAJE formato incorrecto", "mensajes":null}',
    "-303": '{"codigo":-303, "descripcion":"Parametro ID_CAMPANIA formato incorrecto", "mensajes":null}',
}
CREDITS_OK = '{"codigo":1, "descripcion":"ok", "creditos":1200232}'
CREDITS_ERRORS = {
    "-100": '{"codigo":-100, "descripcion":"Apikey no definida", "mensajes":null}',
    "-101": '{"codigo":-101, "descripcion":"Apikey incorrecta", "mensajes":null}',
}
